import { describe, expect, it } from 'vitest'
import {
  EKS_AUTH_ERROR_CODES,
  boundedCode,
  EKS_AUTH_ERRORS,
  isIrrecoverableEksAuthCode,
} from '../../../src/upstream/error-codes.js'

describe('boundedCode', () => {
  it('keeps known codes', () => {
    for (const c of [
      'AccessDeniedException',
      'InvalidTokenException',
      'ResourceNotFoundException',
      'ThrottlingException',
      'ServiceUnavailableException',
      'InternalServerException',
      'UpstreamTimeout',
      'UpstreamUnreachable',
      'InvalidUpstreamResponse',
      'InternalError',
    ]) {
      expect(boundedCode(c)).toBe(c)
    }
  })

  it('folds unknown codes into Other and undefined into Unknown', () => {
    expect(boundedCode('SomeNewException')).toBe('Other')
    expect(boundedCode('')).toBe('Other')
    expect(boundedCode('arn:aws:iam::111122223333:role/x')).toBe('Other')
    expect(boundedCode(undefined)).toBe('Unknown')
  })
})

describe('isIrrecoverableEksAuthCode', () => {
  it("is true for the answers that judge the token (the reference's list and the other 400s), with their own status", () => {
    const irrecoverable = EKS_AUTH_ERROR_CODES.filter((c) =>
      isIrrecoverableEksAuthCode(c, EKS_AUTH_ERRORS[c].status),
    )
    expect(irrecoverable.sort()).toEqual([
      'AccessDeniedException',
      'ExpiredTokenException',
      'InvalidParameterException',
      'InvalidRequestException',
      'InvalidTokenException',
      'ResourceNotFoundException',
    ])
    for (const c of ['ThrottlingException', 'InternalServerException', 'SomethingNew', '']) {
      expect(isIrrecoverableEksAuthCode(c, 400)).toBe(false)
    }
  })

  it('is false for a 5xx whatever its code says (a server fault is retried, never remembered)', () => {
    for (const status of [500, 502, 503, 504]) {
      expect(isIrrecoverableEksAuthCode('InvalidTokenException', status)).toBe(false)
      expect(isIrrecoverableEksAuthCode('AccessDeniedException', status)).toBe(false)
    }
    expect(isIrrecoverableEksAuthCode('AccessDeniedException', 403)).toBe(true)
  })
})
