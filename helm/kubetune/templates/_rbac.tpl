{{/*
What the operator does with the API, rule by rule, and why. One definition, used by the
ClusterRole (watchNamespaces empty) or by a Role in each watched namespace (watchNamespaces
set), so both modes grant exactly the same verbs.
*/}}
{{- define "kubetune.namespacedRules" -}}
# The three kinds it reconciles. list/watch feed kopf's watches; patch/update write the
# operator's finalizers and kopf's progress annotations. The spec is never changed.
- apiGroups: [kubetune.io]
  resources: [finetunejobs, adapters, inferencedeployments]
  verbs: [get, list, watch, patch, update]
# A FineTuneJob that succeeds publishes its artifact as a new Adapter.
- apiGroups: [kubetune.io]
  resources: [adapters]
  verbs: [create]
# Status is written by the operator only: phase, conditions, progress, observedGeneration.
- apiGroups: [kubetune.io]
  resources: [finetunejobs/status, adapters/status, inferencedeployments/status]
  verbs: [get, patch, update]
# Child objects (Jobs, Deployments, Services, Adapters) point at their owner with
# blockOwnerDeletion: true, which the OwnerReferencesPermissionEnforcement admission plugin
# allows only to whoever may update the owner's finalizers subresource.
- apiGroups: [kubetune.io]
  resources: [finetunejobs/finalizers, adapters/finalizers, inferencedeployments/finalizers]
  verbs: [update]
# Dataset-validation and training Jobs: created per FineTuneJob, patched to suspend or
# resume them (spec.suspend, Kueue admission), deleted on cancel or cleanup.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
# Training and serving pods are read, never written: exit codes and container states
# classify failures (OutOfMemory, ImagePullFailed, Preempted) and serving readiness.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# ConfigMaps carry rendered trainer configuration and serving adapter lists to pods.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, delete]
# Services in front of the stable and canary serving pods.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# The serving Deployments (stable and canary) of an InferenceDeployment.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# Weighted canary traffic through the Gateway API, when its CRDs are installed.
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch, delete]
# S3 credentials and model-hub tokens that specs reference by name. get only: the operator
# never lists or watches Secrets, so it reads only the ones an object in its namespace names.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Events that explain what the operator did (kubectl describe), in both event APIs.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
