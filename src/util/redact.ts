// Text from outside (an upstream's error message) can quote what the agent sent: the pod's token
// in the request body, or the node's session token in a signed header (AWS services that reject a
// signature may echo the canonical request, signed header values included). That text reaches
// error bodies and logs, so any piece of a secret in it is cut out first.

/** Pieces of a secret this long or longer are found; shorter ones say nothing of the secret. */
const PIECE = 16
/** Runs of the characters tokens and keys are made of (base64, base64url, JWT dots). */
const RUN = /[A-Za-z0-9+/=_.~-]{16,}/g

export const REDACTED = '[redacted]'

/**
 * `text` with every run of token characters that shares a 16-character piece with one of
 * `secrets` replaced by `[redacted]` (whole, truncated or embedded copies alike). Linear in the
 * lengths of the text and the secrets; secrets shorter than 16 characters are ignored.
 */
export function redactSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  return secretRedactor(secrets)(text)
}

/**
 * redactSecrets for several texts and the same secrets: the secrets' pieces are collected once,
 * on the first text that has a run long enough to hold one.
 */
export function secretRedactor(secrets: readonly (string | undefined)[]): (text: string) => string {
  let pieces: Set<string> | undefined
  return (text) =>
    text.replace(RUN, (run) => {
      pieces ??= piecesOf(secrets)
      for (let i = 0; i + PIECE <= run.length; i++) {
        if (pieces.has(run.slice(i, i + PIECE))) return REDACTED
      }
      return run
    })
}

function piecesOf(secrets: readonly (string | undefined)[]): Set<string> {
  const pieces = new Set<string>()
  for (const s of secrets) {
    if (s === undefined) continue
    for (let i = 0; i + PIECE <= s.length; i++) pieces.add(s.slice(i, i + PIECE))
  }
  return pieces
}
