/**
 * An HTTP error answer as earshot gives it (a problem document with a stable
 * code): its status, its code, its Retry-After and its detail, checked in one
 * place. Returns the problem for further checks.
 */
import { expect } from 'vitest';

export interface Problem {
  code: string;
  detail: string;
}

export async function expectProblem(res: Response, expected: { status: number; code: string; retryAfter?: string; detail?: RegExp }): Promise<Problem> {
  expect(res.status).toBe(expected.status);
  if (expected.retryAfter !== undefined) expect(res.headers.get('retry-after')).toBe(expected.retryAfter);
  const problem = (await res.json()) as Problem;
  expect(problem.code).toBe(expected.code);
  if (expected.detail) expect(problem.detail).toMatch(expected.detail);
  return problem;
}
