{{/* Labels every object carries; `component` tells agent, relay, operator and ui apart. */}}
{{- define "sightline.labels" -}}
app.kubernetes.io/name: sightline
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: sightline
app.kubernetes.io/component: {{ .component }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The stable subset used in selectors (immutable after install). */}}
{{- define "sightline.selectorLabels" -}}
app.kubernetes.io/name: sightline
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* registry/repository:tag or @digest; global.image.registry overrides every registry. */}}
{{- define "sightline.image" -}}
{{- $registry := .root.Values.global.image.registry | default .image.registry -}}
{{- $reference := printf "%s/%s" $registry .image.repository | trimPrefix "/" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $reference .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $reference (.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end }}

{{- define "sightline.imagePullSecrets" -}}
{{- $secrets := concat .root.Values.global.imagePullSecrets .secrets -}}
{{- with $secrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Hubble's rule: 443 with TLS, 80 without, unless set. */}}
{{- define "sightline.peerServicePort" -}}
{{- if .Values.peerService.servicePort -}}
{{- .Values.peerService.servicePort -}}
{{- else if .Values.tls.enabled -}}
443
{{- else -}}
80
{{- end -}}
{{- end }}

{{- define "sightline.relayServicePort" -}}
{{- if .Values.relay.tls.server.enabled }}443{{ else }}80{{ end -}}
{{- end }}

{{/* Dots are not allowed in one DNS label of the wildcard, so Hubble turns them into dashes. */}}
{{- define "sightline.agentServerName" -}}
{{- printf "*.%s.hubble-grpc.cilium.io" (.Values.clusterName | replace "." "-") -}}
{{- end }}

{{- define "sightline.metricsServerName" -}}
{{- printf "%s.hubble-metrics.cilium.io" (.Values.clusterName | replace "." "-") -}}
{{- end }}

{{/* Restricted pod security for the relay, operator and UI containers. */}}
{{- define "sightline.restrictedContainerSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/*
Combinations that install but cannot work. Each message names the keys to change.
*/}}
{{- define "sightline.validate" -}}
{{- $v := .Values -}}
{{- if and $v.relay.tls.server.enabled (not $v.tls.enabled) -}}
{{- fail "relay.tls.server.enabled=true needs tls.enabled=true: the relay's server certificate comes from the same TLS setup" -}}
{{- end -}}
{{- if and $v.ui.tls.client.enabled (not $v.relay.tls.server.enabled) -}}
{{- fail "ui.tls.client.enabled=true needs relay.tls.server.enabled=true (and tls.enabled=true): the UI would speak TLS to a plaintext relay" -}}
{{- end -}}
{{- if and $v.ui.enabled (not $v.relay.enabled) -}}
{{- fail "ui.enabled=true needs relay.enabled=true: the Hubble UI reads flows from the relay" -}}
{{- end -}}
{{- if and $v.relay.tls.server.mtls (not $v.relay.tls.server.enabled) -}}
{{- fail "relay.tls.server.mtls=true needs relay.tls.server.enabled=true" -}}
{{- end -}}
{{- if and $v.tls.enabled (eq $v.tls.auto.method "certmanager") (not $v.tls.auto.certManagerIssuerRef) -}}
{{- fail "tls.auto.method=certmanager needs tls.auto.certManagerIssuerRef ({group, kind, name} of a cert-manager Issuer or ClusterIssuer)" -}}
{{- end -}}
{{- if and $v.export.static.enabled (ne $v.export.static.filePath "stdout") (not (hasPrefix (printf "%s/" (dir $v.agent.socketPath)) $v.export.static.filePath)) -}}
{{- fail (printf "export.static.filePath=%s must be \"stdout\" or a file under %s/ (the agent's only writable host directory, from agent.socketPath)" $v.export.static.filePath (dir $v.agent.socketPath)) -}}
{{- end -}}
{{- if and $v.export.static.enabled $v.export.static.fieldAggregate (has (toString $v.export.static.aggregationInterval) (list "" "0" "0s")) -}}
{{- fail "export.static.fieldAggregate needs export.static.aggregationInterval above 0s: the agent refuses fields to aggregate on with no interval to write them" -}}
{{- end -}}
{{- if ne (int $v.peerService.targetPort) (int $v.agent.listenPort) -}}
{{- fail (printf "peerService.targetPort=%v must equal agent.listenPort=%v: the peer Service forwards to the agents' API" $v.peerService.targetPort $v.agent.listenPort) -}}
{{- end -}}
{{- end }}
