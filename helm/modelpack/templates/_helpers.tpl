{{- define "modelpack.fullname" -}}
{{- printf "%s-modelpack-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelpack.labels" -}}
app.kubernetes.io/name: modelpack-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelpack
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "modelpack.selectorLabels" -}}
app.kubernetes.io/name: modelpack-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelpack.serviceAccountName" -}}
{{- default (include "modelpack.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "modelpack.serverServiceAccount" -}}
{{- default "modelpack-server" .Values.serverImage.serviceAccount -}}
{{- end -}}

{{- define "modelpack.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "modelpack.watchNamespaces" -}}
{{- if .Values.watchNamespaces -}}{{ join "," .Values.watchNamespaces }}{{- else -}}{{ .Release.Namespace }}{{- end -}}
{{- end -}}

{{- define "modelpack.validate" -}}
{{- if not (has .Values.rbac.scope (list "cluster" "namespace")) -}}
{{- fail (printf "rbac.scope must be cluster or namespace, got %q" .Values.rbac.scope) -}}
{{- end -}}
{{- if and (eq .Values.rbac.scope "cluster") .Values.watchNamespaces -}}
{{- fail "watchNamespaces is only used with rbac.scope=namespace; leave it empty for cluster scope" -}}
{{- end -}}
{{- if or (lt (int .Values.limits.maxModelsPerPack) 1) (gt (int .Values.limits.maxModelsPerPack) 100000) -}}
{{- fail (printf "limits.maxModelsPerPack must be from 1 to 100000 (the API's ceiling), got %v" .Values.limits.maxModelsPerPack) -}}
{{- end -}}
{{- if or (lt (int .Values.limits.maxServersPerPack) 1) (gt (int .Values.limits.maxServersPerPack) 10000) -}}
{{- fail (printf "limits.maxServersPerPack must be from 1 to 10000 (the API's ceiling), got %v" .Values.limits.maxServersPerPack) -}}
{{- end -}}
{{- if gt (int .Values.replicas) 1 -}}
{{- fail "replicas must be 1: the operator runs standalone (no leader election)" -}}
{{- end -}}
{{- end -}}

{{- define "modelpack.crdLabels" -}}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
