{{- define "thinkube.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "thinkube.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "thinkube.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "thinkube.serviceAccountName" -}}
{{- default (include "thinkube.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "thinkube.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The PVC name for artifacts or the model cache: an existing claim, the created one, or none. */}}
{{- define "thinkube.claim" -}}
{{- $claim := index . 1 -}}
{{- if $claim.existingClaim -}}
{{- $claim.existingClaim -}}
{{- else if $claim.create -}}
{{- include "thinkube.fullname" (index . 0) }}-{{ index . 2 -}}
{{- end -}}
{{- end -}}

{{/* What the operator does in a watched namespace: its resources, their children, events. */}}
{{- define "thinkube.namespacedRules" -}}
- apiGroups: [thinkube.dev]
  resources: [curationjobs, sftruns, budgetforcedservers, evalsweeps]
  verbs: [get, list, watch, patch]  # patch: kopf's finalizer and annotations
- apiGroups: [thinkube.dev]
  resources: [curationjobs/status, sftruns/status, budgetforcedservers/status, evalsweeps/status]
  verbs: [patch]
- apiGroups: [thinkube.dev]
  # Owner references with blockOwnerDeletion need this where OwnerReferencesPermissionEnforcement is on.
  resources: [curationjobs/finalizers, sftruns/finalizers, budgetforcedservers/finalizers, evalsweeps/finalizers]
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, patch]  # list: an SFTRun's attempts; create+patch: server-side apply
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
