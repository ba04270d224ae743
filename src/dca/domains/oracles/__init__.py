"""Oracle reviewers: programmatic reviewers that know a problem's causal structure exactly
(`arithmetic`: synthetic word problems; `logic`: the logic-grid puzzles; `knights`: reasoning
gym's knights and knaves). Each domain routes to its own (`Domain.oracle`)."""
