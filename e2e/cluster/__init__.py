"""The local control plane: built from the real Kubernetes sources, run on loopback.

`python -m e2e.cluster build|up|down|status|env`. Tests and the demo use it
only when no KUBECONFIG names another cluster.
"""
