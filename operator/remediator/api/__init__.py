"""Typed models of the CRDs, and the CRD YAML generated from them."""
