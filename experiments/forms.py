"""Forms validate and convert; the spec gate (spec.validate_spec) has the final word."""

import json
import os
import tempfile
import zipfile

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator

from runners import process as engine_process
from runners.engine import data as engine_data
from runners.engine import modelfile, schema, zoo
from runners.engine import public as engine_public
from runners.engine.data import SYNTHETIC
from runners.engine.fields import MAX_TEXT, Invalid, plain_json_problems, text_problem
from runners.engine.techniques import validate_steps

from . import spec as specs
from .access import may_change
from .models import Dataset, Membership, Recipe, Team, UploadedModel

ARCH_CHOICES = [
    ("seed_mlp", "Seed MLP (Dense-Dropout-Dense-Dropout-Dense)"),
    ("seed_cnn", "Seed CNN (Conv-Pool-Conv-Pool-Dense)"),
    ("resnet", "ResNet (residual bottleneck blocks)"),
    ("uploaded", "Uploaded .keras model"),
]
DATASET_CHOICES = [
    ("digits", "Digits (scikit-learn, 8x8 grayscale, 10 classes)"),
    ("synthetic", "Synthetic images (generated, learnable class structure)"),
    *((public.name, public.title) for public in engine_public.PUBLIC.values()),
    ("npz", "Uploaded .npz dataset"),
]

# Where each spec path's message is shown in the form.
FIELD_FOR_PATH = {
    "name": "name",
    "hardware": "hardware",
    "training.epochs": "epochs",
    "training.batch_size": "batch_size",
    "training.optimizer": "optimizer",
    "training.learning_rate": "learning_rate",
    "training.seed": "seed",
    "training.repeats": "repeats",
    "benchmark.executions": "bench_executions",
    "benchmark.rounds": "bench_rounds",
    "accuracy_budget": "accuracy_budget",
    "dataset.name": "dataset",
    "dataset.samples": "synthetic_samples",
    "dataset.classes": "synthetic_classes",
    "dataset.shape": "synthetic_height",
    "dataset.shape.0": "synthetic_height",
    "dataset.shape.1": "synthetic_width",
    "dataset.shape.2": "synthetic_channels",
    "dataset.seed": "seed",
    "dataset.dataset_id": "npz_dataset",
    "dataset.train_samples": "subset_train",
    "dataset.test_samples": "subset_test",
    "model.arch": "arch",
    "model.model_id": "uploaded_model",
    "model.params.units": "mlp_units",
    "model.params.filters": "cnn_filters",
    "model.params.dense": "cnn_dense",
    "model.params.depth": "resnet_depth",
    "model.params.width": "resnet_width",
    "model.params.batch_norm": "resnet_batch_norm",
}


def _int(label, bounds, initial, **kwargs):
    low, high = bounds
    return forms.IntegerField(label=label, min_value=low, max_value=high, initial=initial,
                              **kwargs)


def hardware_choices():
    """CPU, any GPU, and each GPU model a live runner has announced."""
    from .models import Worker

    models = sorted({name for worker in Worker.objects.filter(stopped_at=None)
                     for name in worker.gpu_names if name})
    return ([("cpu", "CPU runners"), ("gpu", "Any GPU runner")]
            + [(f"gpu:{name}", f"GPU: {name}") for name in models])


class DatasetChoiceField(forms.ModelChoiceField):
    """An uploaded dataset with its shape and split, so the form says what a run trains,
    validates and tests on."""

    def label_from_instance(self, obj):
        return (f"{obj.name}: {obj.shape_label}, {obj.num_classes} classes, "
                f"{obj.split_label}, {obj.test_samples:,} test")


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=200, initial="digits, seed MLP")
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)

    arch = forms.ChoiceField(label="Model", choices=ARCH_CHOICES, initial="seed_mlp")
    mlp_units = _int("Units per hidden layer", zoo.PARAM_LIMITS["units"], 64,
                     required=False)
    mlp_dropout = forms.FloatField(label="Dropout", min_value=zoo.PARAM_LIMITS["dropout"][0],
                                   max_value=zoo.PARAM_LIMITS["dropout"][1], initial=0.2,
                                   required=False)
    cnn_filters = _int("Filters of the first conv", zoo.PARAM_LIMITS["filters"], 32,
                       required=False)
    cnn_dense = _int("Dense units", zoo.PARAM_LIMITS["dense"], 128, required=False)
    cnn_dropout = forms.FloatField(label="Dropout", min_value=zoo.PARAM_LIMITS["dropout"][0],
                                   max_value=zoo.PARAM_LIMITS["dropout"][1], initial=0.5,
                                   required=False)
    resnet_depth = _int("Bottleneck blocks", zoo.PARAM_LIMITS["depth"], 3,
                        required=False)
    resnet_width = _int("Base width (filters)", zoo.PARAM_LIMITS["width"], 16,
                        required=False)
    resnet_batch_norm = forms.BooleanField(label="BatchNorm", initial=True, required=False)
    uploaded_model = forms.ModelChoiceField(
        label="Uploaded model", queryset=UploadedModel.objects.none(), required=False
    )

    dataset = forms.ChoiceField(choices=DATASET_CHOICES, initial="digits")
    synthetic_samples = _int("Samples", SYNTHETIC.fields["samples"].bounds, 2000, required=False)
    synthetic_height = _int("Height", SYNTHETIC.fields["shape"].item.bounds, 32, required=False)
    synthetic_width = _int("Width", SYNTHETIC.fields["shape"].item.bounds, 32, required=False)
    synthetic_channels = _int("Channels", SYNTHETIC.fields["shape"].item.bounds, 3, required=False)
    synthetic_classes = _int("Classes", SYNTHETIC.fields["classes"].bounds, 10, required=False)
    npz_dataset = DatasetChoiceField(
        label="Uploaded dataset", queryset=Dataset.objects.none(), required=False
    )
    subset_train = _int(
        "Training samples (subset)", engine_data.SUBSET["train_samples"].bounds, None,
        required=False,
        help_text="Leave empty for all. A class-balanced sample drawn with the seed; 10% of "
                  "it is held out for validation. Size a CIFAR run to a CPU runner with it.")
    subset_test = _int(
        "Test samples (subset)", engine_data.SUBSET["test_samples"].bounds, None,
        required=False, help_text="Leave empty for all.")

    epochs = _int("Epochs", schema.EPOCHS, 5)
    batch_size = _int("Batch size", schema.BATCH_SIZE, 64)
    optimizer = forms.ChoiceField(choices=[(o, o) for o in schema.OPTIMIZERS], initial="adam")
    learning_rate = forms.FloatField(
        min_value=schema.LEARNING_RATE[0], max_value=schema.LEARNING_RATE[1], initial=0.001
    )
    seed = _int("Seed", schema.SEED, 0)
    repeats = _int(
        "Repeats", schema.REPEATS, 1, required=False,
        help_text="Train the baseline and every recipe this many times (seed, seed + 1, ...), "
                  "interleaved in the queue. Training speedups get an interval from 2 up.")
    bench_executions = _int(
        "Benchmark processes", schema.BENCHMARK_LIMITS["executions"],
        schema.STAGE_DEFAULTS["executions"], required=False,
        help_text="After training, every model is measured side by side in this many fresh "
                  "processes; the speedup intervals come from the spread between them.")
    bench_rounds = _int(
        "Rounds per process", schema.BENCHMARK_LIMITS["rounds"], schema.STAGE_DEFAULTS["rounds"],
        required=False,
        help_text="Each process measures every model this many times, in a random order.")
    hardware = forms.ChoiceField(initial="cpu", help_text="Where the runs execute.")
    accuracy_budget = forms.FloatField(
        label="Accuracy budget (points)", min_value=0, max_value=100, initial=1.0,
        required=False,
        help_text="The largest drop in test accuracy, in percentage points, that a recipe "
                  "may cost and still be signed off.",
    )

    recipes_json = forms.CharField(
        label="Recipes (JSON)", required=False, widget=forms.Textarea(attrs={"rows": 6}),
        help_text='A list of {"name": ..., "steps": [{"technique": ..., ...}]}; the builder '
                  "above writes it for you.",
    )
    library = forms.ModelMultipleChoiceField(
        label="Saved recipes", queryset=Recipe.objects.none(), required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        teams = Team.objects.for_user(user)
        self.fields["team"].queryset = teams
        self.fields["npz_dataset"].queryset = Dataset.objects.for_user(user)
        self.fields["uploaded_model"].queryset = UploadedModel.objects.for_user(user)
        self.fields["library"].queryset = Recipe.objects.for_user(user).select_related("team")
        self.fields["hardware"].choices = hardware_choices()
        self.spec = None

    def _model(self, data):
        arch = data.get("arch")
        if arch == "uploaded":
            chosen = data.get("uploaded_model")
            return {"arch": "uploaded", "model_id": chosen.pk if chosen else None}
        pick = {
            "seed_mlp": {"units": "mlp_units", "dropout": "mlp_dropout"},
            "seed_cnn": {"filters": "cnn_filters", "dense": "cnn_dense",
                         "dropout": "cnn_dropout"},
            "resnet": {"depth": "resnet_depth", "width": "resnet_width"},
        }.get(arch, {})
        params = {key: data[field] for key, field in pick.items() if data.get(field) is not None}
        if arch == "resnet":
            params["batch_norm"] = bool(data.get("resnet_batch_norm"))
        return {"arch": arch, "params": params}

    def _dataset(self, data):
        subset = {key: data[field] for key, field in (("train_samples", "subset_train"),
                                                      ("test_samples", "subset_test"))
                  if data.get(field) is not None}
        return {**self._dataset_choice(data), **subset}

    def _dataset_choice(self, data):
        name = data.get("dataset")
        if name == "synthetic":
            shape = [data.get("synthetic_height"), data.get("synthetic_width"),
                     data.get("synthetic_channels")]
            return {
                "name": "synthetic",
                "samples": data.get("synthetic_samples") or 2000,
                "shape": [side or 1 for side in shape],
                "classes": data.get("synthetic_classes") or 10,
                "seed": data.get("seed") or 0,
            }
        if name == "npz":
            chosen = data.get("npz_dataset")
            return {"name": "npz", "dataset_id": chosen.pk if chosen else None}
        return {"name": name}

    def clean_recipes_json(self):
        text = self.cleaned_data["recipes_json"].strip()
        if not text:
            return []
        try:
            recipes = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"The recipes are not valid JSON: {exc}") from None
        if not isinstance(recipes, list):
            raise ValidationError("The recipes must be a JSON list.")
        return recipes

    def _recipes(self, data):
        recipes = list(data.get("recipes_json") or [])
        chosen = data.get("library") or []
        recipes += [recipe.as_spec() for recipe in chosen if recipe.team_id == data["team"].pk]
        return recipes

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        spec = {
            "name": data["name"],
            "model": self._model(data),
            "dataset": self._dataset(data),
            "training": {**{key: data[key] for key in
                            ("epochs", "batch_size", "optimizer", "learning_rate", "seed")},
                         "repeats": data.get("repeats") or 1},
            "benchmark": {
                "executions": data.get("bench_executions")
                or schema.STAGE_DEFAULTS["executions"],
                "rounds": data.get("bench_rounds") or schema.STAGE_DEFAULTS["rounds"],
            },
            "recipes": self._recipes(data),
            "accuracy_budget": round(
                (1.0 if data.get("accuracy_budget") is None else data["accuracy_budget"]) / 100, 6
            ),
        }
        hardware, _, gpu_model = data["hardware"].partition(":")
        spec["hardware"] = hardware
        if gpu_model:
            spec["gpu_model"] = gpu_model
        try:
            self.spec = specs.validate_spec(spec, team=data["team"])
        except ValidationError as exc:
            for path, messages in exc.message_dict.items():
                if path.startswith("recipes"):
                    self._recipe_errors(path, messages, spec["recipes"])
                    continue
                field = FIELD_FOR_PATH.get(path)
                for message in messages:
                    self.add_error(field if field in self.fields else None, message)
        return data

    def _recipe_errors(self, path, messages, recipes):
        index = path.split(".")[1] if path.count(".") else ""
        prefix = ""
        if index.isdigit() and int(index) < len(recipes):
            recipe = recipes[int(index)]
            name = recipe.get("name") if isinstance(recipe, dict) else None
            # The name as sent: only a short, storable one is repeated in the message.
            if not isinstance(name, str) or len(name) > 200 or text_problem(name):
                name = None
            prefix = f"Recipe {int(index) + 1}" + (f" ({name})" if name else "") + ": "
        for message in messages:
            self.add_error("recipes_json", prefix + message)


def _explain_skipped_file(form, over_limit, max_bytes):
    # SizeLimitUploadHandler leaves a file over the limit out of the request, so the field
    # would only say that it is required.
    if "file" in over_limit:
        form.fields["file"].error_messages["required"] = (
            f"The file is larger than the limit of {max_bytes:,} bytes."
        )


class DatasetUploadForm(forms.Form):
    name = forms.CharField(max_length=200)
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)
    file = forms.FileField(help_text="A .npz with x_train, y_train, x_test, y_test "
                                     "(keras.datasets layout). Python objects are refused.")

    def __init__(self, *args, user, max_bytes, over_limit=frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Team.objects.for_user(user)
        self.max_bytes = max_bytes
        self.description = None
        _explain_skipped_file(self, over_limit, max_bytes)

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(".npz"):
            raise ValidationError("Upload a .npz file.")
        if upload.size > self.max_bytes:
            raise ValidationError(
                f"The file is {upload.size:,} bytes; the limit is {self.max_bytes:,}."
            )
        path = getattr(upload, "temporary_file_path", None)
        checked = None
        try:
            if path:
                checked = path()
                self.description = engine_data.inspect_npz(checked)
            else:
                with tempfile.NamedTemporaryFile(suffix=".npz") as tmp:
                    checked = tmp.name
                    for chunk in upload.chunks():
                        tmp.write(chunk)
                    tmp.flush()
                    self.description = engine_data.inspect_npz(tmp.name)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            message = str(exc)
            if checked:
                # The check names the file it read, a temporary copy; name the user's file.
                message = message.replace(os.path.basename(checked),
                                          os.path.basename(upload.name))
            raise ValidationError(f"This is not a usable .npz dataset: {message}") from None
        finally:
            upload.seek(0)
        return upload


class ModelUploadForm(forms.Form):
    name = forms.CharField(max_length=200)
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)
    file = forms.FileField(help_text="A classifier saved with model.save('model.keras'): "
                                     "built-in Keras layers only (no Lambda, no custom "
                                     "classes), one input of fixed shape, a softmax or "
                                     "logits output.")

    def __init__(self, *args, user, max_bytes, over_limit=frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Team.objects.for_user(user)
        self.user = user
        self.max_bytes = max_bytes
        self.description = None
        _explain_skipped_file(self, over_limit, max_bytes)

    def clean_team(self):
        team = self.cleaned_data["team"]
        if not may_change(self.user, team.pk):
            raise ValidationError("Viewers cannot upload models to this team.")
        return team

    def clean_file(self):
        upload = self.cleaned_data["file"]
        name = os.path.basename(upload.name)
        if not name.lower().endswith(".keras"):
            raise ValidationError("Upload a model in the native .keras format "
                                  "(model.save('model.keras')); .h5 files and SavedModel "
                                  "folders are not accepted.")
        if upload.size > self.max_bytes:
            raise ValidationError(
                f"The file is {upload.size:,} bytes; the limit is {self.max_bytes:,}."
            )
        if "team" in self.errors:
            return upload  # refused anyway: spare the check its Keras process
        try:
            with tempfile.TemporaryDirectory(prefix="accelweb-model-") as tmp:
                path = os.path.join(tmp, "upload.keras")
                with open(path, "wb") as copy:
                    for chunk in upload.chunks():
                        copy.write(chunk)
                # Zip and JSON first, in this process and without Keras: a Lambda or a
                # custom class is refused before anything can deserialize it.
                modelfile.check_archive(path, name=name)
                self.description = engine_process.inspect_model(path, name=name)
        except ValueError as exc:
            raise ValidationError(str(exc).replace(path, name)) from None
        finally:
            upload.seek(0)
        limit = settings.ACCELWEB_MAX_PARAMS
        if self.description["params"] > limit:
            raise ValidationError(f"This model has {self.description['params']:,} "
                                  f"parameters; the limit is {limit:,}.")
        return upload


def clean_recipe_steps(steps):
    """A recipe's steps as the engine will run them, for the form and the API; raises
    ValidationError with every message. Plain JSON first: a lone surrogate (an escape in
    JSON text) or a 10 MB value would otherwise come back in the "unknown technique"
    message, and a surrogate fails to encode the answer (a 500)."""
    problems = plain_json_problems(steps, "steps")
    if problems:
        raise ValidationError([message for found in problems.values() for message in found])
    try:
        return validate_steps(steps)
    except Invalid as exc:
        raise ValidationError(exc.messages["steps"]) from None


class RecipeForm(forms.Form):
    """A recipe for the library: from a run (steps given) or written as JSON."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=MAX_TEXT,
                                  widget=forms.Textarea(attrs={"rows": 2}))
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None,
                                  required=False)
    steps_json = forms.CharField(
        label="Steps (JSON)", required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text='For example [{"technique": "xla"}, {"technique": "ptq", "mode": "float16"}]',
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if user is not None:
            self.fields["team"].queryset = Team.objects.for_user(user)
            self.fields["team"].required = True
            self.fields["steps_json"].required = True

    def clean_steps_json(self):
        text = self.cleaned_data["steps_json"].strip()
        if self.user is None:
            return None
        try:
            steps = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"The steps are not valid JSON: {exc}") from None
        if not isinstance(steps, list) or not steps:
            raise ValidationError("Give a non-empty JSON list of steps.")
        return clean_recipe_steps(steps)


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    # The refusal does not repeat the value: the page shows it as a message, kept in the
    # session until then, and a 10 MB value would be stored there.
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER,
                             error_messages={"invalid_choice": "Choose viewer, member or "
                                                               "admin as the role."})


class CommentForm(forms.Form):
    """A comment's Markdown body, and optionally the run (of this experiment) it is about."""

    body = forms.CharField(label="Comment", widget=forms.Textarea(attrs={"rows": 3}),
                           help_text="Markdown; HTML is not rendered.",
                           error_messages={"required": "The comment is empty."})
    run = forms.ModelChoiceField(label="About", queryset=None, required=False,
                                 empty_label="the whole experiment")

    def __init__(self, *args, experiment, **kwargs):
        from .models import Comment

        super().__init__(*args, **kwargs)
        self.fields["run"].queryset = experiment.runs.all()
        limit = Comment._meta.get_field("body").max_length
        self.fields["body"].validators.append(MaxLengthValidator(
            limit, message=f"The comment is too long: the limit is {limit:,} characters."))
        self.fields["body"].widget.attrs["maxlength"] = limit


class LoginForm(AuthenticationForm):
    """Django's, but a username over the model's limit is refused by the form: Django only
    sets the widget's maxlength, so a 10 MB username reached authenticate() and django-axes
    failed to record the failed login in its 255-character column (a 500)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].validators.append(
            MaxLengthValidator(self.fields["username"].max_length))


class SignOffForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000,
                           widget=forms.TextInput(attrs={"placeholder": "Note (optional)"}))


class ExperimentFilterForm(forms.Form):
    """The experiments list's search, filters and order (GET): an unknown choice is a form
    error shown above the list, which then lists without that filter."""

    STATUSES = [("", "any status"), ("active", "queued or running"),
                ("failed", "with a failed run"), ("finished", "finished, none failed")]
    SORTS = [("newest", "newest first"), ("oldest", "oldest first"),
             ("fastest", "best speedup first")]

    q = forms.CharField(label="Name", required=False, max_length=200,
                        widget=forms.TextInput(attrs={"placeholder": "name contains",
                                                      "type": "search"}))
    status = forms.ChoiceField(choices=STATUSES, required=False)
    # The short names: "Seed CNN", not the layers in brackets.
    model = forms.ChoiceField(choices=[("", "any model"), *(
        (value, label.split(" (")[0]) for value, label in ARCH_CHOICES)], required=False)
    dataset = forms.ChoiceField(choices=[("", "any dataset"), *(
        (value, label.split(" (")[0]) for value, label in DATASET_CHOICES)], required=False)
    technique = forms.ChoiceField(required=False)
    author = forms.ChoiceField(required=False)
    sort = forms.ChoiceField(choices=SORTS, required=False)

    def __init__(self, data, *, authors):
        super().__init__(data)
        from .techniques import choices

        self.fields["technique"].choices = [("", "any technique"), *choices()]
        self.fields["author"].choices = [("", "anyone"), *(
            (user.username, user.username) for user in authors)]

    def filters(self) -> dict:
        """The valid filters given (the invalid ones left out), empty ones dropped."""
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value}
