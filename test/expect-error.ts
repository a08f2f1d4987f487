/** Assertions on HvmemError, shared by the test suites (not a test file: vitest collects *.test.ts only). */
import {expect} from 'vitest'

import {type ErrorKind, HvmemError} from '../src/core/errors.js'

function check(caught: unknown, kind: ErrorKind, message?: string | RegExp): HvmemError {
  expect(caught).toBeInstanceOf(HvmemError)
  const error = caught as HvmemError
  expect(error.kind).toBe(kind)
  if (message !== undefined) expect(error.message).toMatch(message)
  return error
}

/** Runs `fn`, which must throw an HvmemError of `kind` (whose message contains / matches `message`). */
export function expectHvmemError(fn: () => unknown, kind: ErrorKind, message?: string | RegExp): HvmemError {
  try {
    fn()
  } catch (error) {
    return check(error, kind, message)
  }
  return check(undefined, kind, message)
}

/** Awaits `promise`, which must reject with an HvmemError of `kind`. */
export async function expectHvmemRejection(promise: Promise<unknown>, kind: ErrorKind, message?: string | RegExp): Promise<HvmemError> {
  try {
    await promise
  } catch (error) {
    return check(error, kind, message)
  }
  return check(undefined, kind, message)
}
