"""Layer helpers shared by more than one family: rebuilding a straight chain of layers
(model_parallel, batch_norm) and finding the compressible kernels (pruning, clustering, qat).
Keras is imported inside the functions: the package loads without a framework."""

from runners.engine.events import EngineError

# compressible_layers' classes, by name, for applies_to's ModelFacts.
COMPRESSIBLE = ("Dense", "Conv1D", "Conv2D", "Conv3D")


def chain_layers(model, technique):
    """The layers of a model that is one straight chain (seed_mlp, seed_cnn), inputs first."""
    from runners.engine.modelfile import straight_chain

    layers = straight_chain(model)
    if layers is None:
        raise EngineError(
            f"{technique} rebuilds models layer by layer and needs a straight chain of "
            f"layers; {model.name} has branches (use the resnet's own options instead)"
        )
    return layers


def rebuild_chain(model, technique, expand):
    """A new functional model from a chain; ``expand(layer)`` gives the layers to use for it."""
    import keras

    inputs = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    x = inputs
    for layer in chain_layers(model, technique):
        for new in expand(layer):
            x = new(x)
    return keras.Model(inputs, x, name=model.name)


def chain_refusal(technique, model):
    """applies_to's side of chain_layers: refuse a model known to branch."""
    if model.chain is False:
        return (f"The {technique} step rebuilds models layer by layer and needs a straight "
                f"chain of layers; {model.arch} has branches.")
    return None


def compressible_layers(model):
    """Dense and convolution layers (the toolkit's prunable kernels), nested models included."""
    import keras

    kinds = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(compressible_layers(layer))
        elif isinstance(layer, kinds) and not isinstance(layer, keras.layers.Conv2DTranspose):
            found.append(layer)
    return found
