{{/* Names and labels shared by every template. */}}

{{- define "remediator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "remediator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped objects are shared by every namespace: the release namespace keeps their names apart. */}}
{{- define "remediator.clusterName" -}}
{{- printf "%s-%s" (include "remediator.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "remediator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "remediator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "remediator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "remediator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: remediator
{{- end -}}

{{- define "remediator.operatorSelectorLabels" -}}
{{ include "remediator.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "remediator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "remediator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "remediator.peeringName" -}}
{{- if .Values.peering.name -}}
{{- .Values.peering.name -}}
{{- else if .Values.watchNamespaces -}}
{{- include "remediator.fullname" . -}}
{{- else -}}
{{- include "remediator.clusterName" . -}}
{{- end -}}
{{- end -}}

{{- define "remediator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
What the operator does inside the namespaces it serves (a Role per watched namespace, or cluster-wide).
Derived from the code: kopf handlers (pods, runbooks, remediations, remediationapprovals), the actions
(restart/scale/rollback/raiseMemory patch workloads; deletePod; the rollback lists ReplicaSets and
ControllerRevisions, and aborts Argo Rollouts through their status), the guards
(namespace labels, pod counts), the SLO evaluator, the change journal, and Events. No Secrets: they are files.
*/}}
{{- define "remediator.namespacedRules" -}}
{{- $impersonate := .Values.actions.serviceAccount }}
{{- if $impersonate }}
# Actions run as the tenants' ServiceAccounts (impersonate: tenant-actions.yaml, named accounts in the
# tenant namespaces only): the operator itself only reads workloads.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
{{- else }}
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete]
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
{{- end }}
{{- if include "remediator.readsConfigMaps" . }}
# The change journal: a ConfigMap edit can be the probable cause.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
{{- end }}
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, watch{{ if not $impersonate }}, patch{{ end }}]
# The revision histories: the rollback reads them, the change journal watches them.
- apiGroups: [apps]
  resources: [replicasets, controllerrevisions]
  verbs: [get, list, watch]
# Argo Rollouts as targets: rollback = abort (status subresource) + undo (spec); the Rollouts CRD may be absent.
- apiGroups: [argoproj.io]
  resources: [rollouts]
  verbs: [get, list, watch{{ if not $impersonate }}, patch{{ end }}]
{{- if not $impersonate }}
- apiGroups: [argoproj.io]
  resources: [rollouts/status]
  verbs: [patch]
{{- end }}
# The change journal reads HPAs; a scale raises an HPA's floor or KEDA's paused-replicas under a lease, and the
# lease sweep (controller/autoscalers.py) restores them as the operator; raiseMemory reads VPAs.
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, patch]
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, list, watch, patch]
- apiGroups: [autoscaling.k8s.io]
  resources: [verticalpodautoscalers]
  verbs: [get, list, watch]
- apiGroups: [remediator.dev]
  resources: [runbooks]
  verbs: [get, list, watch]
- apiGroups: [remediator.dev]
  resources: [remediations]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [remediator.dev]
  resources: [remediations/status, servicelevelobjectives/status, remediationapprovals/status, runbooks/status]
  verbs: [update, patch]
- apiGroups: [remediator.dev]
  resources: [servicelevelobjectives]
  verbs: [get, list, watch]
- apiGroups: [remediator.dev]
  resources: [remediationapprovals]
  verbs: [get, list, watch, patch]
# The per-target claim: one Lease per target being acted on, taken before the action (controller/claims.py).
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update, delete]
{{- if and .Values.peering.enabled .Values.watchNamespaces }}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end -}}

{{/* Non-empty when the operator may read ConfigMaps: in watchNamespaces, or everywhere if asked. */}}
{{- define "remediator.readsConfigMaps" -}}
{{- if or .Values.watchNamespaces .Values.rbac.configMapsClusterWide }}true{{ end -}}
{{- end -}}

{{/* What the operator needs beyond its namespaces, in every mode. */}}
{{- define "remediator.clusterRules" -}}
# kopf discovers CRDs and namespaces; the guards read namespace labels.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
# Guardrails are cluster policies; concurrency and storm guards count open Remediations everywhere,
# from a watch-fed index (watch shows nothing list does not; it replaces a list per plan).
- apiGroups: [remediator.dev]
  resources: [remediationpolicies]
  verbs: [get, list, watch]
- apiGroups: [remediator.dev]
  resources: [remediations]
  verbs: [list, watch]
# GitOps owners of a target (they live in flux-system/argocd, outside the served namespaces): read, and
# paused/resumed per RemediationPolicy gitops; their sources' revisions say when Git moved on.
- apiGroups: [kustomize.toolkit.fluxcd.io, helm.toolkit.fluxcd.io, argoproj.io]
  resources: [kustomizations, helmreleases, applications]
  verbs: [get, patch]
- apiGroups: [source.toolkit.fluxcd.io]
  resources: [gitrepositories, ocirepositories, buckets, helmcharts]
  verbs: [get]
# Node labels feed the risk score; the change journal watches nodes.
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch{{ if .Values.rbac.nodeDrain }}, patch{{ end }}]
{{- if .Values.rbac.nodeDrain }}
# cordonDrain: the pods on a node, in any namespace, go through the Eviction API.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
{{- end }}
{{- if and .Values.peering.enabled (not .Values.watchNamespaces) }}
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end -}}

{{/* What a tenant's actions ServiceAccount may do: the built-in namespaced actions, nothing more. */}}
{{- define "remediator.actionRules" -}}
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, watch, patch]
- apiGroups: [apps]
  resources: [replicasets, controllerrevisions]
  verbs: [get, list, watch]
- apiGroups: [argoproj.io]
  resources: [rollouts]
  verbs: [get, list, watch, patch]
- apiGroups: [argoproj.io]
  resources: [rollouts/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, patch]
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, list, patch]
- apiGroups: [autoscaling.k8s.io]
  resources: [verticalpodautoscalers]
  verbs: [get, list]
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
{{- end -}}

{{/* Where the release's identity-bound admission policies apply: its watchNamespaces, else
admissionPolicy.namespaceSelector, else everywhere (nothing rendered). */}}
{{- define "remediator.admissionScope" -}}
{{- if .Values.watchNamespaces }}
matchResources:
  namespaceSelector:
    matchExpressions:
      - {key: kubernetes.io/metadata.name, operator: In, values: {{ .Values.watchNamespaces | toJson }}}
{{- else if .Values.admissionPolicy.namespaceSelector }}
matchResources:
  namespaceSelector: {{ .Values.admissionPolicy.namespaceSelector | toJson }}
{{- end }}
{{- end }}
