"""Fine-tuning epochs after the run's own, shared by pruning, clustering and qat: they are
added in ``configure``, switched on between epochs, and counted as a one-time cost."""


def add_fine_tune_epochs(ctx, epochs):
    """Train the run's own epochs, then ``epochs`` more; returns the epoch compression starts."""
    begin = ctx.training["epochs"] if epochs else 0
    ctx.training["epochs"] += epochs
    return begin


def add_fine_tune_cost(ctx, technique, begin_epoch, fine_tune_epochs):
    """The fine-tuning epochs are a one-time cost of shipping the compressed model."""
    if fine_tune_epochs:
        seconds = sum(e["seconds"] for e in ctx.epochs if e["epoch"] > begin_epoch)
        ctx.add_one_time_cost(f"{technique} fine-tuning ({fine_tune_epochs} epochs)", seconds)


def retrace(model):
    """Make the next batch use a new train (and test) function.

    Constraints and Python flags are read when the step function is traced; both trainers
    look ``model.train_function`` up for every batch, so replacing it between epochs is
    enough, and under JAX the state is re-read from the variables at every epoch's start.
    """
    model.make_train_function(force=True)
    model.make_test_function(force=True)
