"""Function views, one module per area: pages (experiments, runs, recipes, datasets,
runners), review (comparison charts, cross-experiment compare, report), discussion
(comments, sign-offs), uploads (.keras models). Access checks live in experiments.access."""
