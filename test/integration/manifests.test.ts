// The deployment as a user renders it: every kustomization under manifests/ built with kustomize
// (the pinned binary; `kubectl kustomize` too where it is installed), every object
// validated against the Kubernetes OpenAPI schema (kubernetes-models), the DaemonSet's settings
// checked one by one, and every container's args and env accepted by the agent's own parser.

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor'
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount'
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet'
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet'
import type { IContainer } from 'kubernetes-models/v1/Container'
import { describe, expect, it } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { parseInitArgs } from '../../src/cli/init-command.js'
import { parseServerArgs } from '../../src/cli/server-flags.js'
import { hasKubectl, kustomize } from '../helpers/kustomize.js'
import { buildServerConfig } from '../../src/config/server-config.js'
import { SERVICE_ACCOUNT_DIR } from '../../src/token/api-server-keys.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const KUSTOMIZE = await kustomize()
if (KUSTOMIZE === undefined) {
  console.warn(
    'manifest tests skipped: no kustomize (the pinned binary cannot be fetched on this platform, and kubectl is not installed)',
  )
}
const VARIANTS = [
  'manifests',
  'manifests/overlays/ipv4-only',
  'manifests/overlays/hybrid',
  'manifests/overlays/any-cluster',
  'manifests/overlays/monitoring',
  'manifests/overlays/verify-tokens',
]

/** The schema of each kind the manifests hold. */
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  DaemonSet,
  ConfigMap,
  ServiceAccount,
  PodMonitor,
  PrometheusRule,
}

interface K8sObject {
  kind: string
  metadata: { name: string; namespace?: string }
  /** A ConfigMap's. */
  data?: Record<string, string>
}

function build(dir: string): K8sObject[] {
  const out = KUSTOMIZE?.render(`${ROOT}${dir}`) ?? ''
  return parseAllDocuments(out).map((d) => d.toJS() as K8sObject)
}

const rendered = new Map(VARIANTS.map((v) => [v, KUSTOMIZE === undefined ? [] : build(v)]))

function daemonSet(objects: K8sObject[]): IDaemonSet {
  const ds = objects.filter((o) => o.kind === 'DaemonSet')
  expect(ds).toHaveLength(1)
  return ds[0] as unknown as IDaemonSet
}

/** The env a container gets from the ConfigMaps it names (envFrom), as the kubelet builds it. */
function envOf(objects: K8sObject[], c: IContainer): Record<string, string> {
  const env: Record<string, string> = {}
  for (const from of c.envFrom ?? []) {
    const cm = objects.find(
      (o) => o.kind === 'ConfigMap' && o.metadata.name === from.configMapRef?.name,
    )
    expect(cm, `ConfigMap ${from.configMapRef?.name}`).toBeDefined()
    Object.assign(env, cm?.data)
  }
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value
  return env
}

function container(ds: IDaemonSet, name: string): IContainer {
  const spec = ds.spec?.template.spec
  const c = [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])].find(
    (x) => x.name === name,
  )
  expect(c, name).toBeDefined()
  return c as IContainer
}

describe.skipIf(KUSTOMIZE === undefined).each(VARIANTS)('%s', (variant) => {
  const objects = rendered.get(variant) as K8sObject[]
  const ds = daemonSet(objects)
  const pod = ds.spec?.template.spec
  const agent = container(ds, 'agent')
  const init = container(ds, 'init')

  it('every object validates against the Kubernetes OpenAPI schema', () => {
    for (const o of objects) {
      const Model = MODELS[o.kind]
      expect(Model, `a model for ${o.kind}`).toBeDefined()
      expect(() => new (Model as (typeof MODELS)[string])(o as never).validate()).not.toThrow()
      expect(o.metadata.namespace).toBe('kube-system')
    }
  })

  it('runs on Linux nodes of the architectures the image is built for, never on Fargate', () => {
    expect(pod?.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' })
    const terms =
      pod?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms
    expect(terms).toHaveLength(1)
    const exprs = terms?.[0]?.matchExpressions ?? []
    expect(exprs).toContainEqual({
      key: 'kubernetes.io/arch',
      operator: 'In',
      values: ['amd64', 'arm64'],
    })
    const compute = exprs.find((e) => e.key === 'eks.amazonaws.com/compute-type')
    if (variant.endsWith('hybrid')) {
      expect(compute).toEqual({
        key: 'eks.amazonaws.com/compute-type',
        operator: 'In',
        values: ['hybrid'],
      })
    } else {
      expect(compute?.operator).toBe('NotIn')
      expect(compute?.values).toEqual(expect.arrayContaining(['fargate', 'hybrid']))
    }
  })

  it('host network, node-critical, rolling 10 % at a time, a grace period above the drain', () => {
    expect(pod?.hostNetwork).toBe(true)
    expect(pod?.dnsPolicy).toBe('Default')
    expect(pod?.priorityClassName).toBe('system-node-critical')
    // the agent's own token only where it reads the API server's keys with it
    expect(pod?.automountServiceAccountToken).toBe(variant.endsWith('verify-tokens'))
    expect(ds.spec?.updateStrategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: '10%' },
    })
    expect(pod?.terminationGracePeriodSeconds).toBeGreaterThan(25) // the agent drains for 25 s
    expect(pod?.securityContext?.seccompProfile).toEqual({ type: 'RuntimeDefault' })
  })

  it('the init container runs initialize with NET_ADMIN only, and has resources', () => {
    expect(init.args?.[0]).toBe('initialize')
    expect(init.securityContext?.capabilities).toEqual({ drop: ['ALL'], add: ['NET_ADMIN'] })
    expect(init.securityContext?.allowPrivilegeEscalation).toBe(false)
    expect(init.securityContext?.readOnlyRootFilesystem).toBe(true)
    expect(init.resources?.requests).toBeDefined()
    expect(init.resources?.limits?.memory).toBeDefined()
    expect(parseInitArgs((init.args ?? []).slice(1))).toEqual({
      help: false,
      ipv4Only: variant.endsWith('ipv4-only'),
    })
  })

  it('the agent: NET_BIND_SERVICE only, read-only root, no privilege escalation; probes on 2703, metrics on 2705', () => {
    const sc = agent.securityContext
    expect(sc?.capabilities).toEqual({ drop: ['ALL'], add: ['NET_BIND_SERVICE'] })
    expect(sc?.readOnlyRootFilesystem).toBe(true)
    expect(sc?.allowPrivilegeEscalation).toBe(false)
    expect(sc?.privileged).toBeUndefined()
    // root, for port 80: the reason is in base/daemonset.yaml, and the image's user is not root
    expect(sc?.runAsUser).toBe(0)
    expect(agent.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 2703 })
    expect(agent.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 2703 })
    expect(agent.ports).toContainEqual({ name: 'metrics', containerPort: 2705, protocol: 'TCP' })
    expect(agent.resources?.limits?.memory).toBeDefined()
    for (const c of [agent, init]) expect(c.image).toMatch(/^[^:]+\/pod-identity-agent:\S+$/)
  })

  it("the agent's args and env are accepted by its own parser; the args set nothing a user sets by env", () => {
    expect(agent.args).toEqual(['server'])
    // and the service env vars the kubelet gives every pod
    const env = { ...envOf(objects, agent), KUBERNETES_SERVICE_HOST: '10.100.0.1' }
    const parsed = parseServerArgs((agent.args ?? []).slice(1), env)
    if (parsed.help) throw new Error('--help')
    const config = buildServerConfig(parsed.raw, env)
    expect(config.clusterName).toBe('my-cluster')
    expect(config.region).toBe('us-west-2')
    expect(config.port).toBe(80)
    expect(config.probePort).toBe(2703)
    expect(config.metricsPort).toBe(2705)
    if (variant.endsWith('ipv4-only')) expect(config.bindHosts).toEqual(['169.254.170.23'])
    else expect(config.bindHosts).toEqual(['169.254.170.23', 'fd00:ec2::23'])
    if (variant.endsWith('hybrid')) {
      expect(config.rotateCredentials).toBe(true)
      const mount = agent.volumeMounts?.find((m) => m.mountPath === '/root/.aws')
      expect(mount?.readOnly).toBe(true)
      const volume = pod?.volumes?.find((v) => v.name === mount?.name)
      expect(volume?.hostPath).toEqual({ path: '/eks-hybrid/.aws', type: 'Directory' })
      expect(ds.metadata?.name).toBe('pod-identity-agent-hybrid')
    }
    if (variant.endsWith('verify-tokens')) {
      expect(config).toMatchObject({
        tokenJwks: 'https://10.100.0.1:443/openid/v1/jwks',
        tokenJwksServiceAccountDir: SERVICE_ACCOUNT_DIR,
        tokenIssuer: 'https://kubernetes.default.svc.cluster.local',
        shareCredentials: 'per-pod',
      })
      const sa = objects.find((o) => o.kind === 'ServiceAccount')
      expect(pod?.serviceAccountName).toBe(sa?.metadata.name)
    } else {
      expect(config.tokenJwks).toBeUndefined()
    }
    if (variant.endsWith('any-cluster')) {
      expect(config.credentialSource).toBe('sts')
      const mount = agent.volumeMounts?.find((m) =>
        config.associationsFile?.startsWith(`${m.mountPath}/`),
      )
      const volume = pod?.volumes?.find((v) => v.name === mount?.name)
      const cm = objects.find((o) => o.metadata.name === volume?.configMap?.name) as
        { data: Record<string, string> } | undefined
      const file = config.associationsFile?.split('/').pop() as string
      expect(cm?.data?.[file]).toContain('roleArn:')
    }
  })
})

describe.skipIf(KUSTOMIZE === undefined)('manifests', () => {
  it('the schema check catches a broken field (the control)', () => {
    const ds = structuredClone(daemonSet(rendered.get('manifests') as K8sObject[]))
    const c = ds.spec?.template.spec?.containers[0] as IContainer
    ;(c.ports as unknown as { containerPort: unknown }[])[0]!.containerPort = 'eighty'
    expect(() => new DaemonSet(ds).validate()).toThrow(/containerPort must be integer/)
    const noSelector = structuredClone(daemonSet(rendered.get('manifests') as K8sObject[]))
    delete (noSelector.spec as { selector?: unknown }).selector
    expect(() => new DaemonSet(noSelector).validate()).toThrow(/selector/)
  })

  it('says why: the DNS policy, the grace period and running as root, in comments beside them', () => {
    const base = readFileSync(`${ROOT}manifests/base/daemonset.yaml`, 'utf8')
    const commentBefore = (field: string): string => {
      const lines = base.split('\n')
      const at = lines.findIndex((l) => l.trim().startsWith(`${field}:`))
      expect(at, field).toBeGreaterThan(0)
      let i = at - 1
      const comment: string[] = []
      while (i >= 0 && (lines[i] as string).trim().startsWith('#'))
        comment.unshift(lines[i--] as string)
      return comment.join(' ')
    }
    expect(commentBefore('dnsPolicy')).toMatch(/resolver/)
    expect(commentBefore('terminationGracePeriodSeconds')).toMatch(/drain/)
    expect(base).toMatch(/# Root with only NET_BIND_SERVICE/)
  })

  it('the three lines a user changes are in manifests/config, and every variant takes them', () => {
    const config = readFileSync(`${ROOT}manifests/config/kustomization.yaml`, 'utf8')
    expect(config).toMatch(/POD_IDENTITY_AGENT_CLUSTER_NAME=my-cluster # 1\./)
    expect(config).toMatch(/AWS_REGION=us-west-2 # 2\./)
    expect(config).toMatch(/newName: \S+ # 3\./)
    for (const v of VARIANTS) {
      const cm = (rendered.get(v) as K8sObject[]).find((o) =>
        o.metadata.name.startsWith('pod-identity-agent-config'),
      )
      expect(cm?.data).toMatchObject({
        POD_IDENTITY_AGENT_CLUSTER_NAME: 'my-cluster',
        AWS_REGION: 'us-west-2',
      })
    }
  })

  const crossCheck = hasKubectl() && KUSTOMIZE?.what !== 'kubectl kustomize'
  it.skipIf(!crossCheck)('kubectl kustomize renders the same (kubectl on this machine)', () => {
    for (const v of VARIANTS) {
      const kubectl = execFileSync('kubectl', ['kustomize', `${ROOT}${v}`], { encoding: 'utf8' })
      expect(parseAllDocuments(kubectl).map((d) => d.toJS())).toEqual(rendered.get(v))
    }
  })
})
