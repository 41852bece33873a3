/**
 * Routes are paths (`/`, `/devices/<id>`, `/sessions`, `/audit`, `/updates`): the Worker serves index.html for any
 * path it does not own (single-page fallback), so a device's URL can be
 * bookmarked and shared. Links marked `data-nav` move without a reload.
 */
export type Route = { view: "fleet" } | { view: "device"; id: string } | { view: "sessions" } | { view: "audit" } | { view: "updates" };

export function devicePath(id: string): string {
  return `/devices/${encodeURIComponent(id)}`;
}

export function parseRoute(pathname: string): Route {
  if (/^\/sessions\/?$/.test(pathname)) return { view: "sessions" };
  if (/^\/audit\/?$/.test(pathname)) return { view: "audit" };
  // Releases and rollouts (rollouts-view.ts); /rollouts is what the API calls them.
  if (/^\/(updates|rollouts)\/?$/.test(pathname)) return { view: "updates" };
  const m = /^\/devices\/([^/]+)\/?$/.exec(pathname);
  if (m) {
    try {
      return { view: "device", id: decodeURIComponent(m[1]!) };
    } catch {
      // A malformed %-escape: not a device URL we made; show the fleet.
    }
  }
  return { view: "fleet" };
}

/** Call `onRoute` for the current path, on back/forward, and on clicks on `a[data-nav]`. */
export function startRouter(onRoute: (route: Route) => void): { go(path: string, replace?: boolean): void } {
  const go = (path: string, replace = false) => {
    if (path !== location.pathname) history[replace ? "replaceState" : "pushState"](null, "", path);
    onRoute(parseRoute(location.pathname));
  };
  addEventListener("popstate", () => onRoute(parseRoute(location.pathname)));
  document.addEventListener("click", (event) => {
    const link = (event.target as Element | null)?.closest?.("a[data-nav]");
    // Let the browser handle new-tab and modified clicks.
    if (!(link instanceof HTMLAnchorElement) || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    go(link.pathname);
  });
  onRoute(parseRoute(location.pathname));
  return { go };
}
