"""The micro world: a from-scratch assistant of about a million parameters with the synthetic
task's own word-level vocabulary, trained by the same trainer, credit and reviewers as any
other model (see docs/micro-world.md).

- `dca.micro.vocabulary`: the shipped tokenizer and the vocabulary checks;
- `dca.train.micro`: the micro model's architecture, its warm-start recipe and the cached
  start checkpoint that the model name ``micro`` resolves to.
"""
