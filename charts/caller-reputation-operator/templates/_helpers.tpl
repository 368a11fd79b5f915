{{/* Name of the chart, or nameOverride. */}}
{{- define "cro.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name: fullnameOverride, or <release>-<name> unless the release already contains the name. */}}
{{- define "cro.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "cro.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cro.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cro.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cro.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cro.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cro.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cro.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the default credentials Secret, or nothing when there are no default credentials. */}}
{{- define "cro.credentialsSecret" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else if or .Values.credentials.authId .Values.credentials.authToken }}
{{- printf "%s-credentials" (include "cro.fullname" .) }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: as set, or when more than one replica runs. */}}
{{- define "cro.leaderElection" -}}
{{- if kindIs "invalid" .Values.leaderElection.enabled }}
{{- gt (int .Values.replicas) 1 }}
{{- else }}
{{- .Values.leaderElection.enabled }}
{{- end }}
{{- end }}

{{- define "cro.leaseName" -}}
{{- default (include "cro.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The public callback base URL: as set, or derived from the Ingress host. */}}
{{- define "cro.callbackBaseUrl" -}}
{{- if .Values.callbackBaseUrl }}
{{- .Values.callbackBaseUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.host }}
{{- printf "%s://%s" (ternary "https" "http" (gt (len .Values.ingress.tls) 0)) .Values.ingress.host }}
{{- end }}
{{- end }}

{{/* The rules of the operator's access to the resources it manages, shared by the ClusterRole and the per-namespace Roles. */}}
{{- define "cro.managerRules" -}}
# Watched through caches; spec changes and finalizers are patched, never read one by one.
- apiGroups: ["callerreputation.io"]
  resources: ["businessprofiles", "callerreputationnumbers"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["callerreputation.io"]
  resources: ["businessprofiles/status", "callerreputationnumbers/status"]
  verbs: ["patch"]
# Credentials are read when a resource is reconciled; Secrets in use get a finalizer and a label,
# removed again when the last resource using them is gone.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "patch"]
# kube-runtime's Recorder creates Events and patches a repeated one into a series.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Whole seconds of a duration written as <n>s, <n>m or <n>h (the forms the chart documents). */}}
{{- define "cro.seconds" -}}
{{- $text := toString . }}
{{- if regexMatch "^[0-9]+s$" $text }}
{{- trimSuffix "s" $text | int }}
{{- else if regexMatch "^[0-9]+m$" $text }}
{{- mul (trimSuffix "m" $text | int) 60 }}
{{- else if regexMatch "^[0-9]+h$" $text }}
{{- mul (trimSuffix "h" $text | int) 3600 }}
{{- else }}
{{- fail (printf "shutdownTimeout must be a whole number of seconds, minutes or hours such as 30s, got %q" $text) }}
{{- end }}
{{- end }}
