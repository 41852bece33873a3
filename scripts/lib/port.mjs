// Is a port free? A quick listen on it, closed at once: the only answer that
// matches what the endpoint's own bind will meet (another program, another
// `npm start`, a workerd left behind), checked before anything starts or prints.
import { createServer } from "node:net";

/**
 * Resolves true if `host:port` can be listened on now, false if it is in use;
 * any other failure (a bad host, a privileged port) rejects with its own message.
 * @param {string} host
 * @param {number | string} port
 * @returns {Promise<boolean>}
 */
export function portFree(host, port) {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (err) => {
      if (/** @type {NodeJS.ErrnoException} */ (err).code === "EADDRINUSE") resolve(false);
      else reject(err);
    });
    server.listen({ host, port: Number(port), exclusive: true }, () => server.close(() => resolve(true)));
  });
}
