"""Triton source generation: the pattern predicate (``predicate``), the forward kernel
(``forward``) and the backward kernels (``backward``)."""
