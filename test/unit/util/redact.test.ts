import { describe, expect, it } from 'vitest'
import { REDACTED, redactSecrets } from '../../../src/util/redact.js'

const TOKEN =
  'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJhdWQiOlsicG9kcy5la3MuYW1hem9uYXdzLmNvbSJdLCJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphcHAifQ.c2lnbmF0dXJlLWJ5dGVzLXRoYXQtYXJlLWxvbmctZW5vdWdo'
const SESSION = 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLXdlc3QtMiJHMEUCIQD+abc/def=='

/** Every 16-character piece of `secret`: none may survive redaction. */
function assertNoPiece(text: string, secret: string): void {
  for (let i = 0; i + 16 <= secret.length; i++) {
    expect(text.includes(secret.slice(i, i + 16)), secret.slice(i, i + 16)).toBe(false)
  }
}

describe('redactSecrets', () => {
  it('cuts a whole token out of a message and keeps the rest', () => {
    const out = redactSecrets(`token "${TOKEN}" is not valid`, [TOKEN])
    expect(out).toBe(`token "${REDACTED}" is not valid`)
  })

  it('cuts truncated and embedded copies: a prefix, a middle piece, a suffix', () => {
    const prefix = TOKEN.slice(0, 60)
    const middle = TOKEN.slice(40, 90)
    const suffix = TOKEN.slice(-30)
    const out = redactSecrets(`a ${prefix} (cut) b xx${middle}yy c ${suffix}`, [TOKEN])
    assertNoPiece(out, TOKEN)
    expect(out).toBe(`a ${REDACTED} (cut) b ${REDACTED} c ${REDACTED}`)
  })

  it('cuts a session token quoted in a canonical request (base64 with + / =)', () => {
    const text = `The Canonical String for this request should have been 'POST\n/clusters/c/assume-role-for-pod-identity\n\nx-amz-security-token:${SESSION}\n'`
    const out = redactSecrets(text, [TOKEN, SESSION])
    assertNoPiece(out, SESSION)
    expect(out).toContain('/clusters/c/assume-role-for-pod-identity')
  })

  it('leaves request ids, ARNs and long words that are no piece of a secret', () => {
    const text =
      'request 1b4e28ba-2fa1-11d2-883f-0016d3cca427 for arn:aws:iam::111122223333:role/App: AssumeRoleForPodIdentity throttled'
    expect(redactSecrets(text, [TOKEN, SESSION])).toBe(text)
  })

  it('ignores missing secrets and ones too short to say anything', () => {
    expect(redactSecrets('abcdefghijklmnopqrstuvwxyz', [undefined, 'abcdefghij'])).toBe(
      'abcdefghijklmnopqrstuvwxyz',
    )
    expect(redactSecrets('nothing here', [])).toBe('nothing here')
  })
})
