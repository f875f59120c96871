{{/*
The chart name (app.kubernetes.io/name), 63 characters at most.
*/}}
{{- define "ragmon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full resource name: RELEASE-ragmon, or RELEASE when it already contains the chart name.
*/}}
{{- define "ragmon.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "ragmon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "ragmon.labels" -}}
helm.sh/chart: {{ include "ragmon.chart" . }}
{{ include "ragmon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ragmon
{{- end }}

{{/*
Labels that select the pods (stable across upgrades).
*/}}
{{- define "ragmon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ragmon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ragmon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ragmon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ragmon.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
"true" when the store is SQLite (one file on one volume: one replica, Recreate).
*/}}
{{- define "ragmon.sqlite" -}}
{{- if eq .Values.database.type "sqlite" }}true{{ end }}
{{- end }}

{{/*
The name of the Secret mounted under /etc/ragmon/secrets ("" when there is none).
*/}}
{{- define "ragmon.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.values }}
{{- include "ragmon.fullname" . }}
{{- end }}
{{- end }}

{{- define "ragmon.goldenConfigMap" -}}
{{- if .Values.goldenSets.existingConfigMap }}
{{- .Values.goldenSets.existingConfigMap }}
{{- else if .Values.goldenSets.files }}
{{- printf "%s-golden" (include "ragmon.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The ragmon config file: `config` from the values, with the two keys the chart owns. The
listener binds every interface, because kubelet probes and Prometheus reach the pod by its IP.
*/}}
{{- define "ragmon.config" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $server := deepCopy (get $config "server" | default dict) }}
{{- if hasKey $server "listen" }}
{{- fail "config.server.listen is set by the chart (all interfaces on service.port, where the kubelet probes and Prometheus connect): remove it and set service.port instead" }}
{{- end }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.service.port)) }}
{{- $_ = set $config "server" $server }}
{{- $store := deepCopy (get $config "store" | default dict) }}
{{- if hasKey $store "url" }}
{{- fail "config.store.url is set by the chart: remove it and set database.type (sqlite on the volume, or postgresql with the URL in the Secret key database.urlSecretKey)" }}
{{- end }}
{{- if include "ragmon.sqlite" . }}
{{- if and (not .Values.deployment.enabled) .Values.persistence.enabled }}
{{- fail "deployment.enabled=false (sidecar mode) with database.type=sqlite and persistence.enabled=true would mount one SQLite claim in every pod of the host Deployment: set database.type=postgresql (shared history), or persistence.enabled=false (a store per pod, lost with the pod)" }}
{{- end }}
{{- $_ = set $store "url" "sqlite:////var/lib/ragmon/ragmon.db" }}
{{- else }}
{{- if not (include "ragmon.secretName" .) }}
{{- fail (printf "database.type=postgresql reads the URL from the Secret key %q: set secrets.values.%s or secrets.existingSecret" .Values.database.urlSecretKey .Values.database.urlSecretKey) }}
{{- end }}
{{- if and (not .Values.secrets.existingSecret) (not (hasKey .Values.secrets.values .Values.database.urlSecretKey)) }}
{{- fail (printf "database.type=postgresql: secrets.values has no key %q (database.urlSecretKey); add the PostgreSQL URL there or use secrets.existingSecret" .Values.database.urlSecretKey) }}
{{- end }}
{{- $_ = set $store "url" (dict "file" (printf "/etc/ragmon/secrets/%s" .Values.database.urlSecretKey)) }}
{{- end }}
{{- $_ = set $config "store" $store }}
{{- toYaml $config }}
{{- end }}

{{/*
The ragmon container. Standalone mode puts it in the chart's Deployment; a host chart that has
ragmon as a dependency renders it in its own pods with the subchart's scope (sidecar mode,
docs/kubernetes.md):
  containers:
    - {{- include "ragmon.sidecar" .Subcharts.ragmon | nindent 10 }}
  volumes:
    {{- include "ragmon.volumes" .Subcharts.ragmon | nindent 8 }}
With sidecar.native, it is an init container with restartPolicy: Always (Kubernetes 1.29+).
*/}}
{{- define "ragmon.sidecar" -}}
{{- include "ragmon.container" . }}
{{- if .Values.sidecar.native }}
restartPolicy: Always
{{- end }}
{{- end }}

{{/*
The ragmon container of the chart's own Deployment (ragmon.sidecar without restartPolicy).
*/}}
{{- define "ragmon.container" -}}
name: ragmon
image: {{ include "ragmon.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["run", "--config", "/etc/ragmon/config/ragmon.yaml"]
env:
  - name: RAGMON_CONFIG
    value: /etc/ragmon/config/ragmon.yaml
  # the instance name of `deployment.mode: sidecar` (one history per pod)
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: HF_HUB_OFFLINE
    value: "1"
  - name: HOME
    value: /tmp
  - name: XDG_CACHE_HOME
    value: /tmp/cache
  - name: MPLCONFIGDIR
    value: /tmp/matplotlib
  - name: OMP_NUM_THREADS
    value: {{ .Values.cpuThreads | int | quote }}
  - name: TOKENIZERS_PARALLELISM
    value: "false"
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  - name: {{ .Values.service.portName }}
    containerPort: {{ int .Values.service.port }}
    protocol: TCP
startupProbe:
  httpGet:
    path: /healthz
    port: {{ .Values.service.portName }}
  {{- toYaml .Values.probes.startup | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .Values.service.portName }}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .Values.service.portName }}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: ragmon-config
    mountPath: /etc/ragmon/config
    readOnly: true
  {{- if include "ragmon.goldenConfigMap" . }}
  - name: ragmon-golden
    mountPath: /etc/ragmon/golden
    readOnly: true
  {{- end }}
  {{- if include "ragmon.secretName" . }}
  - name: ragmon-secrets
    mountPath: /etc/ragmon/secrets
    readOnly: true
  {{- end }}
  - name: ragmon-data
    mountPath: /var/lib/ragmon
  - name: ragmon-tmp
    mountPath: /tmp
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
The pod volumes the ragmon container mounts (a host chart adds them to its pod in sidecar mode).
*/}}
{{- define "ragmon.volumes" -}}
- name: ragmon-config
  configMap:
    name: {{ include "ragmon.fullname" . }}-config
{{- with include "ragmon.goldenConfigMap" . }}
- name: ragmon-golden
  configMap:
    name: {{ . }}
{{- end }}
{{- with include "ragmon.secretName" . }}
- name: ragmon-secrets
  secret:
    secretName: {{ . }}
    # readable by the container's user whatever the pod's fsGroup (sidecar mode)
    defaultMode: 0444
{{- end }}
{{- if and (include "ragmon.sqlite" .) .Values.persistence.enabled }}
- name: ragmon-data
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim | default (printf "%s-data" (include "ragmon.fullname" .)) }}
{{- else }}
- name: ragmon-data
  emptyDir: {}
{{- end }}
- name: ragmon-tmp
  emptyDir:
    sizeLimit: 1Gi
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}
