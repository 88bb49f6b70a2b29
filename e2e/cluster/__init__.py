"""The local control plane: built from the real Kubernetes sources, run on loopback.

`python -m e2e.cluster build|up|down|status|env [--with helm,kubeconform,flux]`;
`up --with flux` also runs Flux's source-controller and kustomize-controller and a Git server (flux.py). Tests and the demo use it
only when no KUBECONFIG names another cluster.
"""
