{{/* Chart name, truncated to a DNS label. */}}
{{- define "trustgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: <release>-<chart>, or the release name when it contains the chart name. */}}
{{- define "trustgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "trustgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trustgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trustgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trustgate.labels" -}}
helm.sh/chart: {{ include "trustgate.chart" . }}
{{ include "trustgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: registry-proxy
{{- end }}

{{- define "trustgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trustgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "trustgate.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* A StatefulSet when each replica keeps a persistent cache, else a Deployment. */}}
{{- define "trustgate.workloadKind" -}}
{{- if .Values.cache.persistence.enabled }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{/* Replicas the workload can run with at least: decides whether a PDB makes sense. */}}
{{- define "trustgate.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.minReplicas }}{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{/* Mount paths inside the container. */}}
{{- define "trustgate.caPath" -}}
{{- $bundle := index .root.Values.caBundles .name | required (printf "caBundle %q is not defined in caBundles" .name) -}}
/etc/trustgate/ca/{{ .name }}/{{ $bundle.key }}
{{- end }}

{{/* trustgate.yaml: the proxy's configuration. */}}
{{- define "trustgate.config" -}}
server:
  listen: "0.0.0.0:5000"
  admin_listen: "0.0.0.0:9090"
  {{- if .Values.tls.enabled }}
  tls:
    cert_file: /etc/trustgate/tls/tls.crt
    key_file: /etc/trustgate/tls/tls.key
  {{- end }}
  {{- if .Values.adminToken.existingSecret }}
  admin_token_file: /etc/trustgate/admin-token/token
  {{- end }}
cache:
  dir: /var/cache/trustgate
  max_size: {{ .Values.cache.maxSize | quote }}
{{- if eq .Values.storage.backend "s3" }}
{{- with .Values.storage.s3 }}
storage:
  backend: s3
  s3:
    bucket: {{ required "storage.s3.bucket is required when storage.backend is s3" .bucket | quote }}
    {{- with .endpoint }}
    endpoint: {{ . | quote }}
    {{- end }}
    {{- with .region }}
    region: {{ . | quote }}
    {{- end }}
    {{- with .prefix }}
    prefix: {{ . | quote }}
    {{- end }}
    {{- if .allowHttp }}
    allow_http: true
    {{- end }}
    {{- if .virtualHostedStyle }}
    virtual_hosted_style: true
    {{- end }}
    {{- if .existingSecret }}
    access_key_id_file: /etc/trustgate/s3/access-key-id
    secret_access_key_file: /etc/trustgate/s3/secret-access-key
    {{- end }}
    {{- if .trustStateKeySecret }}
    trust_state_key_file: /etc/trustgate/s3-trust-state/trust-state-key
    {{- end }}
{{- end }}
{{- end }}
{{- if .Values.records.enabled }}
{{- with .Values.records }}
records:
  {{- if .file.enabled }}
  file:
    path: /var/log/trustgate/{{ .file.name }}
    max_size: {{ .file.maxSize | quote }}
    keep: {{ int .file.keep }}
  {{- end }}
  {{- with .webhooks }}
  webhooks:
  {{- range $i, $w := . }}
    - url: {{ $w.url | quote }}
      {{- if $w.queue }}
      queue: {{ int $w.queue }}
      {{- end }}
      {{- with $w.timeout }}
      timeout: {{ . | quote }}
      {{- end }}
      {{- if hasKey $w "maxRetries" }}
      max_retries: {{ int $w.maxRetries }}
      {{- end }}
      {{- if $w.headersSecret }}
      headers_file: /etc/trustgate/records/webhook-{{ $i }}/headers
      {{- end }}
  {{- end }}
  {{- end }}
{{- end }}
{{- end }}
{{- if .Values.auth.enabled }}
{{- with .Values.auth }}
auth:
  anonymous: {{ .anonymous }}
  {{- if .htpasswd.existingSecret }}
  {{- if not .tokenKey.existingSecret }}
  {{- fail "auth.htpasswd.existingSecret needs auth.tokenKey.existingSecret (the key tokens from /token are signed with)" }}
  {{- end }}
  htpasswd_file: /etc/trustgate/auth/htpasswd/htpasswd
  {{- end }}
  {{- if .tokenKey.existingSecret }}
  token_key_file: /etc/trustgate/auth/token-key/token.key
  {{- end }}
  {{- with .tokenTtl }}
  token_ttl: {{ . | quote }}
  {{- end }}
  {{- with .tokens }}
  tokens:
  {{- range $i, $t := . }}
    - name: {{ required (printf "auth.tokens[%d].name is required" $i) $t.name | quote }}
      file: /etc/trustgate/auth/tokens/{{ $i }}/token
  {{- end }}
  {{- end }}
  {{- with .groups }}
  groups:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .access }}
  access:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if and .rateLimit .rateLimit.requestsPerSecond }}
  rate_limit:
    requests_per_second: {{ int .rateLimit.requestsPerSecond }}
    burst: {{ int (default 100 .rateLimit.burst) }}
  {{- end }}
  {{- with .clientCertificates }}
  {{- if .enabled }}
  {{- if not $.Values.tls.enabled }}
  {{- fail "auth.clientCertificates needs tls.enabled (client certificates are presented in the TLS handshake)" }}
  {{- end }}
  client_certificates:
    ca_file: /etc/trustgate/auth/client-ca/{{ default "ca.crt" .ca.key }}
    required: {{ .required }}
    {{- with .principals }}
    principals:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .crls }}
    crl_files:
    {{- range $i, $c := . }}
      - /etc/trustgate/auth/crls/{{ $i }}/{{ default "crl.pem" $c.key }}
    {{- end }}
    {{- end }}
  {{- end }}
  {{- end }}
  {{- with .loginFailures }}
  {{- if or .burst .perMinute }}
  login_failures:
    {{- with .burst }}
    burst: {{ int . }}
    {{- end }}
    {{- with .perMinute }}
    per_minute: {{ int . }}
    {{- end }}
  {{- end }}
  {{- end }}
  {{- with .passwordCacheTtl }}
  password_cache_ttl: {{ . | quote }}
  {{- end }}
{{- end }}
{{- end }}
upstreams:
{{- range $i, $u := .Values.upstreams }}
  - registry: {{ $u.registry | quote }}
    url: {{ $u.url | quote }}
    {{- if $u.default }}
    default: true
    {{- end }}
    {{- with $u.credentials }}
    username: {{ .username | quote }}
    password_file: /etc/trustgate/credentials/{{ $i }}/password
    {{- end }}
    {{- with $u.caBundle }}
    ca_file: {{ include "trustgate.caPath" (dict "root" $ "name" .) }}
    {{- end }}
{{- end }}
{{- with .Values.notaryServers }}
notary_servers:
{{- range . }}
  - name: {{ .name | quote }}
    url: {{ .url | quote }}
    {{- with .ttl }}
    ttl: {{ . | quote }}
    {{- end }}
    {{- with .caBundle }}
    ca_file: {{ include "trustgate.caPath" (dict "root" $ "name" .) }}
    {{- end }}
{{- end }}
{{- end }}
policy:
  {{- toYaml .Values.policy | nindent 2 }}
{{- end }}
