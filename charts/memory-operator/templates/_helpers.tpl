{{/* Name of the operator's objects: the release name, or fullnameOverride. */}}
{{- define "memory-operator.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels of every object of the chart. `app.kubernetes.io/name: memory-operator` is fixed: the
NetworkPolicies the operator renders let pods with this label reach Qdrant.
*/}}
{{- define "memory-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "memory-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: memory-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "memory-operator.selectorLabels" -}}
app.kubernetes.io/name: memory-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "memory-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "memory-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A repository pulled from `imageRegistry` instead of its own registry: the first path component is
replaced when it names a registry (it has a dot or a port, or is localhost), else the registry is put
before it (a Docker Hub name). The operator moves the stores' default images by the same rule.
*/}}
{{- define "memory-operator.relocate" -}}
{{- $repository := .repository -}}
{{- with .registry -}}
{{- $first := first (splitList "/" $repository) -}}
{{- $path := $repository -}}
{{- if and (contains "/" $repository) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $path = join "/" (rest (splitList "/" $repository)) -}}
{{- end -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $path -}}
{{- end -}}
{{- $repository -}}
{{- end -}}

{{- define "memory-operator.image" -}}
{{- $repository := include "memory-operator.relocate" (dict "repository" .Values.image.repository "registry" .Values.imageRegistry) -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The jobs run the operator's image unless told otherwise. */}}
{{- define "memory-operator.jobImage" -}}
{{- $repository := default .Values.image.repository .Values.jobs.image.repository -}}
{{- $repository = include "memory-operator.relocate" (dict "repository" $repository "registry" .Values.imageRegistry) -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.jobs.image.tag -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{/* `name,...` of a list of references, as the operator's pull secret flag takes it. */}}
{{- define "memory-operator.names" -}}
{{- $names := list -}}
{{- range . -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{/* `key=value,...` of a map, as the operator's selector flags take it. */}}
{{- define "memory-operator.labelList" -}}
{{- $pairs := list -}}
{{- range $key, $value := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* Namespaces that get the jobs' ServiceAccount and its role binding. */}}
{{- define "memory-operator.jobNamespaces" -}}
{{- if .Values.rbac.clusterWide -}}
{{- toJson (uniq .Values.jobs.namespaces) -}}
{{- else -}}
{{- toJson (uniq .Values.watchNamespaces) -}}
{{- end -}}
{{- end -}}

{{/*
What the operator may do in the namespaces it watches (docs/security.md explains each rule).
Namespaced resources only; `memory-operator.clusterRules` holds the cluster-scoped ones.
*/}}
{{- define "memory-operator.namespacedRules" -}}
- apiGroups: ["memory-operator.io"]
  resources: ["memorystores", "memorypolicies"]
  verbs: ["get", "list", "watch", "patch", "update"]
# Backups: scheduled ones are created, pruned ones deleted.
- apiGroups: ["memory-operator.io"]
  resources: ["memorybackups"]
  verbs: ["get", "list", "watch", "patch", "update", "create", "delete"]
- apiGroups: ["memory-operator.io"]
  resources: ["memorystores/status", "memorypolicies/status", "memorybackups/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["memory-operator.io"]
  resources: ["memorystores/finalizers", "memorybackups/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["services", "configmaps", "secrets", "persistentvolumeclaims", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Pods are read only, for the results of jobs.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["apps"]
  resources: ["statefulsets", "deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["batch"]
  resources: ["cronjobs", "jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Kopf's peering between replicas watching listed namespaces: one object in each.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch", "create"]
{{- end -}}

{{/* Kopf discovers the CRDs in every mode; it lists namespaces only when it watches them all. */}}
{{- define "memory-operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- if .Values.rbac.clusterWide }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
# Kopf's peering between replicas watching every namespace (the operator creates the object).
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch", "create"]
{{- end }}
{{- end -}}

{{/* What the backup job needs (the expiration job mounts no token at all). */}}
{{- define "memory-operator.jobRules" -}}
- apiGroups: ["memory-operator.io"]
  resources: ["memorystores"]
  verbs: ["get"]
- apiGroups: ["memory-operator.io"]
  resources: ["memorybackups"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["memory-operator.io"]
  resources: ["memorybackups/status"]
  verbs: ["get", "patch", "update"]
# The store's credential Secrets; resourceNames cannot name them in advance, so any Secret of the namespace.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end -}}
