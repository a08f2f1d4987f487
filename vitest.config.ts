import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // CLI tests start the real binary (a Node process each); give them room on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
