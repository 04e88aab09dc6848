{{- define "lorax.fullname" -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lorax.labels" -}}
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
