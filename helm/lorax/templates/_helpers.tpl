{{- define "lorax.fullname" -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lorax.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lorax.labels" -}}
helm.sh/chart: {{ include "lorax.chart" . }}
app.kubernetes.io/name: lorax-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "lorax.selectorLabels" -}}
app.kubernetes.io/name: lorax-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lorax.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lorax.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The engine image written into the operator's config: config.engineImage, else the engine image of this
chart's appVersion (never :latest, so an upgrade of the chart is an upgrade of the engine default too). */}}
{{- define "lorax.engineImage" -}}
{{- default (printf "ghcr.io/lorax-plus/lorax-engine:%s" .Chart.AppVersion) .Values.config.engineImage -}}
{{- end -}}
