// The HTTP handler the AWS SDK clients the agent uses (STS) send their requests with: undici,
// through the same kind of keep-alive, proxy-aware dispatcher as the EKS Auth client, so that
// HTTPS_PROXY, HTTP_PROXY and NO_PROXY apply to every upstream call. The SDK's default handler
// (node:http) ignores them. It implements the SDK's public HttpHandler interface: a request in,
// { response: { statusCode, headers, body } } out, the body read whole (capped).

import type { STSClientConfig } from '@aws-sdk/client-sts'
import type { Dispatcher } from 'undici'
import { readCapped } from './read-capped.js'

/** The handler type the STS client takes. */
export type SdkRequestHandler = NonNullable<STSClientConfig['requestHandler']>

/** What the SDK hands the handler (its HttpRequest). */
interface SdkRequest {
  protocol: string
  hostname: string
  port?: number | undefined
  path: string
  query?: Record<string, string | string[] | null> | undefined
  method: string
  headers: Record<string, string>
  body?: unknown
}

/** Largest response body read, bytes (an STS answer is about 2 KB). */
const MAX_BODY_BYTES = 256 * 1024

function queryString(query: SdkRequest['query']): string {
  if (query === undefined) return ''
  const parts: string[] = []
  for (const [k, v] of Object.entries(query)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      parts.push(
        one === null
          ? encodeURIComponent(k)
          : `${encodeURIComponent(k)}=${encodeURIComponent(one)}`,
      )
    }
  }
  return parts.length === 0 ? '' : `?${parts.join('&')}`
}

/** An SDK request handler that sends through `dispatcher`; timeouts per phase in ms. */
export function undiciRequestHandler(dispatcher: Dispatcher, timeoutMs: number): SdkRequestHandler {
  return {
    metadata: { handlerProtocol: 'http/1.1' },
    async handle(request: SdkRequest, options?: { abortSignal?: AbortSignal | undefined }) {
      const port = request.port === undefined ? '' : `:${request.port}`
      const res = await dispatcher.request({
        origin: `${request.protocol}//${request.hostname}${port}`,
        path: `${request.path}${queryString(request.query)}`,
        method: request.method as Dispatcher.HttpMethod,
        headers: request.headers,
        body: request.body as string | Uint8Array | undefined,
        signal: options?.abortSignal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      })
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries(res.headers)) {
        if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v
      }
      const body = await readCapped(res.body, res.headers, MAX_BODY_BYTES)
      if (body === undefined) {
        throw Object.assign(new Error(`response body larger than ${MAX_BODY_BYTES} bytes`), {
          code: 'UND_ERR_RES_EXCEEDED_MAX_SIZE',
        })
      }
      return { response: { statusCode: res.statusCode, headers, body } }
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs: () => ({}),
    destroy() {},
  } as unknown as SdkRequestHandler
}
