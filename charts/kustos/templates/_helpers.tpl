{{- define "kustos.labels" -}}
app.kubernetes.io/name: kustos-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: kustos
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kustos.selector" -}}
app.kubernetes.io/name: kustos-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kustos.webhook" -}}
{{ printf "kustos-pod-credentials-%s" .Release.Namespace }}
{{- end -}}

{{- define "kustos.validate" -}}
{{- if not (has .Values.store.type (list "sqlite" "postgresql")) -}}
{{- fail "store.type must be sqlite or postgresql" -}}
{{- end -}}
{{- if and (eq .Values.store.type "sqlite") (gt (int .Values.replicas) 1) -}}
{{- fail "store.type=sqlite has one writer: replicas must be 1 (use store.type=postgresql to scale)" -}}
{{- end -}}
{{- end -}}
