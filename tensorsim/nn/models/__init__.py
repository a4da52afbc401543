"""The models of the torch bridge, in one place: each a ``torch.nn.Module`` and its builder.

Importing this package imports torch (``import tensorsim`` does not). The layers and
algorithms the models are made of stay in :mod:`tensorsim.nn` (attention and KV caches,
RoPE, spectral convolution, factorized weights, patching, adapters); the training loops are
not in ``tensorsim`` at all. The submodules are imported by name (their builders share the
name ``build_model``):

- :mod:`~tensorsim.nn.models.fno`: FNO, TFNO and MG-TFNO neural operators
  (:class:`~tensorsim.nn.models.fno.TFNOParams`, :func:`~tensorsim.nn.models.fno.build_model`,
  :func:`~tensorsim.nn.models.fno.factorize_model`,
  :func:`~tensorsim.nn.models.fno.count_parameters`; arXiv 2310.00120, 2010.08895);
- :mod:`~tensorsim.nn.models.decoder`: a small pre-norm decoder-only transformer with
  MHA/GQA/MQA or Tensor Product Attention and KV-cached decoding
  (:class:`~tensorsim.nn.models.decoder.Decoder`, :class:`~tensorsim.nn.models.decoder.RMSNorm`,
  :class:`~tensorsim.nn.models.decoder.SwiGLU`, :func:`~tensorsim.nn.models.decoder.solve_d_ff`;
  arXiv 2501.06425, 2302.13971);
- :mod:`~tensorsim.nn.models.completion`: tensor-completion models from cell multi-indices to
  values, ending in the linear head that TracIn influence uses
  (:class:`~tensorsim.nn.models.completion.DAINMLP`, ``CoSTCo``, ``CPCompletion``,
  ``TuckerCompletion``, :func:`~tensorsim.nn.models.completion.build_model` by name;
  arXiv 2108.10248);
- :mod:`~tensorsim.nn.models.small`: the small models of the optimizer comparisons (a
  digits CNN, a digits MLP and a causal character transformer);
- :mod:`~tensorsim.nn.models.mlp`: the MLP of the adapter experiments (equal hidden
  layers, the adapter targets; :func:`~tensorsim.nn.models.mlp.build_mlp`);
- :mod:`~tensorsim.nn.models.fields`: radiance fields, TensoRF-CP, TensoRF-VM and Strivec
  with their shader (:class:`~tensorsim.nn.models.fields.ModelSpec`,
  :func:`~tensorsim.nn.models.fields.build_model`, the configuration tables
  :class:`~tensorsim.nn.models.fields.TensoRFParams` and
  :class:`~tensorsim.nn.models.fields.StrivecParams`; arXiv 2203.09517, 2307.13226).

Every builder draws its initial weights from a seeded generator (or, where documented,
torch's global one), so a model is reproducible from its configuration.
"""

__all__: list[str] = []
