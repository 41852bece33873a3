/**
 * Test projects:
 *  - workerd: the Worker and the rooms, inside the real workerd runtime (Workers vitest integration);
 *  - node:    the device agent and the dashboard's view logic, in Node 22;
 *  - e2e:     the real endpoint process (`npm run endpoint`) spoken to over real sockets;
 *  - browser: the dashboard in Debian's Chromium (playwright-core) against the real endpoint and the real agent.
 * e2e and browser share test/support/ (processes, endpoint, agent, client, nginx).
 */
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              // Test-only values: short timeouts so presence and command time-outs happen in a test's time.
              bindings: {
                SESSION_SECRET: "test-only-session-secret-0123456789abcdef",
                ADMIN_TOKEN: "test-only-admin-token-0123456789abcdef",
                VIEWER_TOKEN: "test-only-viewer-token-0123456789abcdef",
                HEARTBEAT_MS: "300",
                HEARTBEAT_TIMEOUT_MS: "900",
                COMMAND_TIMEOUT_MS: "800",
                // Presence checked every 300 ms watched or not; a group waits at most 150 ms.
                PRESENCE_CHECK_MS: "300",
                UNWATCHED_CHECK_MS: "300",
                GROUP_COMMIT_MS: "150",
                // Small enough for a test to reach it with three frames.
                RETAIN_READINGS: "1000",
                FLEET_PUSH_MS: "0",
                LOG_READINGS: "false",
                // Low enough that the flood test goes past it quickly; the fuzz test paces itself under it.
                FRAME_RATE: "500",
                FRAME_BURST: "1000",
                // Alerts (test/workerd/alerts.test.ts): a webhook secret, and retries 100 ms apart (doubling).
                ALERT_WEBHOOK_SECRET: "test-only-webhook-secret-0123456789abcdef",
                ALERT_RETRY_BASE_MS: "100",
                ALERT_WEBHOOK_TIMEOUT_MS: "1000",
                // test/workerd/fuzz.test.ts: how many hostile inputs, and the seed to replay (empty: its defaults).
                FUZZ_RUNS: process.env.FUZZ_RUNS ?? "",
                FUZZ_SEED: process.env.FUZZ_SEED ?? "",
                // test/workerd/releases.test.ts signs with the private half of this test-only release key.
                RELEASE_PUBLIC_KEY: "GA8efEoKDIUl4_lEzffyrgEeevr3iU0qx0vLsTsLWho",
                // Rooms read the rollouts afresh on every look: a test's rollout is seen at once.
                FIRMWARE_CHECK_MS: "0",
              },
            },
          }),
        ],
        test: {
          name: "workerd",
          include: ["test/workerd/**/*.test.ts"],
          setupFiles: ["test/workerd/setup.ts"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          environment: "node",
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // One endpoint process at a time: these machines have two cores.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          environment: "node",
          // Starting wrangler dev and Chromium on a busy two-core machine can take a while.
          testTimeout: 60_000,
          hookTimeout: 180_000,
          // One endpoint and one Chromium at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
