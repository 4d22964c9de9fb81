import { describe, expect, it } from 'vitest'
import {
  EKS_AUTH_ERROR_CODES,
  boundedCode,
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
  it("is true for the answers that judge the token (the reference's list and the other 400s)", () => {
    const irrecoverable = EKS_AUTH_ERROR_CODES.filter(isIrrecoverableEksAuthCode)
    expect(irrecoverable.sort()).toEqual([
      'AccessDeniedException',
      'ExpiredTokenException',
      'InvalidParameterException',
      'InvalidRequestException',
      'InvalidTokenException',
      'ResourceNotFoundException',
    ])
    for (const c of ['ThrottlingException', 'InternalServerException', 'SomethingNew', '']) {
      expect(isIrrecoverableEksAuthCode(c)).toBe(false)
    }
  })
})
