"""The control plane (`thinkube api`): REST over the custom resources, secured by Kubernetes.

Callers present a Kubernetes bearer token; TokenReview says who they are and
SubjectAccessReview whether Kubernetes RBAC lets them do the action, so the API grants no
more than kubectl would. The control plane then acts with its own ServiceAccount.
"""
