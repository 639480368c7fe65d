"""The modelpack Kubernetes operator: reconciles ModelPacks into server Deployments and runs LoadTests as Jobs.

Layers, each importable without kopf: ``builders`` (pure spec -> Kubernetes dicts), ``reconcile``
(apply desired objects, compute status), ``kube`` (a thin API client), and ``handlers`` (the kopf
wiring, the only module that imports kopf).
"""
