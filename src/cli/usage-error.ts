// A bad flag or argument: main prints `pod-identity-agent: <message>` on one line and exits 2.

export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}
