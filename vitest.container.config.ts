/**
 * The container test (test/container/): docker/Dockerfile built and run by a real
 * Docker engine. Its own config, run by `npm test` after the other projects
 * (`npm run test:container`): an image build and a container on these two cores
 * would slow the timing-sensitive browser and e2e tests if they ran side by side.
 */
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "container",
    include: ["test/container/**/*.test.ts"],
    environment: "node",
    testTimeout: 180_000,
    hookTimeout: 900_000,
    fileParallelism: false,
  },
});
