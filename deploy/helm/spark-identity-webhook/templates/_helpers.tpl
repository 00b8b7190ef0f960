{{/*
The name of the Deployment, Service, ServiceAccount, ClusterRole and webhook
configurations: fullnameOverride, or spark-identity-webhook (deploy/base's).
*/}}
{{- define "siw.fullname" -}}
{{- default "spark-identity-webhook" .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
The prefix of the other names: the full name without its "-webhook" suffix
(spark-identity), as deploy/base names spark-identity-policy and
spark-identity-audit.
*/}}
{{- define "siw.prefix" -}}
{{- include "siw.fullname" . | trimSuffix "-webhook" -}}
{{- end }}

{{- define "siw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "siw.fullname" . }}
{{- end }}

{{- define "siw.helmLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "siw.labels" -}}
{{ include "siw.selectorLabels" . }}
{{ include "siw.helmLabels" . }}
{{- end }}

{{- define "siw.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}{{- $repo = printf "%s/%s" (trimSuffix "/" .Values.image.registry) $repo -}}{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end }}

{{- define "siw.tlsSecret" -}}
{{- default (printf "%s-tls" (include "siw.fullname" .)) .Values.certs.secretName -}}
{{- end }}

{{/* The ConfigMap holding policy.yaml: the admin's, or the chart's. */}}
{{- define "siw.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "siw.prefix" .)) .Values.policy.existingConfigMap -}}
{{- end }}

{{/*
The policy.yaml the chart writes: policy.content as it is (a string), as
toYaml writes it (a map), or the example policy files/policy.yaml (a copy of
deploy/policy.yaml) when empty.
*/}}
{{- define "siw.policyText" -}}
{{- $c := .Values.policy.content -}}
{{- if kindIs "string" $c -}}
{{- if $c -}}{{- $c -}}{{- else -}}{{- .Files.Get "files/policy.yaml" -}}{{- end -}}
{{- else -}}
{{- toYaml $c -}}
{{- end -}}
{{- end }}

{{/*
The caBundle of secret mode: certs.caBundle, or, when that is empty, the one
the configuration KIND NAME already carries in the cluster (helm lookup: an
upgrade that forgets the value keeps the CA instead of writing "" and
leaving the API server unable to trust the webhook). On install, and under
helm template, there is none: "" as deploy/base ships it.
Called with (list $ KIND NAME).
*/}}
{{- define "siw.caBundle" -}}
{{- $root := index . 0 -}}
{{- $ca := $root.Values.certs.caBundle -}}
{{- if not $ca -}}
{{- $live := lookup "admissionregistration.k8s.io/v1" (index . 1) "" (index . 2) -}}
{{- range (get $live "webhooks" | default list) -}}
{{- if not $ca -}}{{- $ca = (.clientConfig).caBundle | default "" -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $ca -}}
{{- end }}

{{/*
A webhook's clientConfig: webhooks.url + PATH when set (a webhook served
outside the cluster), else the Service; the caBundle in secret mode only
(cert-manager's CA injector fills it otherwise). Called with
(list $ PATH KIND NAME), KIND NAME its configuration.
*/}}
{{- define "siw.clientConfig" -}}
{{- $root := index . 0 -}}
{{- $path := index . 1 -}}
clientConfig:
{{- if $root.Values.webhooks.url }}
  url: {{ printf "%s%s" (trimSuffix "/" $root.Values.webhooks.url) $path | quote }}
{{- else }}
  service:
    name: {{ include "siw.fullname" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: {{ $path }}
    port: 443
{{- end }}
{{- if eq $root.Values.certs.mode "secret" }}
  caBundle: {{ include "siw.caBundle" (list $root (index . 2) (index . 3)) | quote }}
{{- end }}
{{- end }}

{{/* cert-manager's CA injector annotation, in certManager mode. */}}
{{- define "siw.injectCA" -}}
{{- if eq .Values.certs.mode "certManager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "siw.fullname" .) }}
{{- end }}
{{- end }}

{{/* Every namespace but kube-system and the release's. */}}
{{- define "siw.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: [kube-system, {{ .Release.Namespace }}]
{{- end }}

{{/* The namespace-grants matchConditions' list: ['env', 'tier']. */}}
{{- define "siw.grantLabelList" -}}
{{- $keys := list -}}
{{- range .Values.webhooks.namespaceGrants.labelKeys -}}{{- $keys = append $keys (printf "'%s'" .) -}}{{- end -}}
[{{ join ", " $keys }}]
{{- end }}

{{/* The serving pods' security context (deploy/base). */}}
{{- define "siw.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "siw.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end }}
