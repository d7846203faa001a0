from django.urls import path

from .views import pages

urlpatterns = [
    path("", pages.home, name="home"),
    path("healthz", pages.healthz, name="healthz"),
    path("experiments/new/", pages.experiment_new, name="experiment_new"),
    path("experiments/<int:pk>/", pages.experiment_detail, name="experiment_detail"),
    path("experiments/<int:pk>/results/", pages.experiment_results, name="experiment_results"),
    path("experiments/<int:pk>/spec.json", pages.experiment_spec, name="experiment_spec"),
    path("experiments/<int:pk>/export.<str:fmt>", pages.experiment_export,
         name="experiment_export"),
    path("runs/<int:pk>/", pages.run_detail, name="run_detail"),
    path("runs/<int:pk>/artifacts/<str:name>", pages.run_artifact, name="run_artifact"),
    path("runs/<int:pk>/save-recipe/", pages.run_save_recipe, name="run_save_recipe"),
    path("recipes/", pages.recipe_list, name="recipe_list"),
    path("recipes/<int:pk>/delete/", pages.recipe_delete, name="recipe_delete"),
    path("runs/<int:pk>/cancel/", pages.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/rerun/", pages.run_rerun, name="run_rerun"),
    path("datasets/", pages.dataset_list, name="dataset_list"),
    path("runners/", pages.runner_list, name="runner_list"),
    path("runners/table/", pages.runner_table, name="runner_table"),
]

# Review: charts, cross-experiment compare, print report (experiments.views.review).

# Discussion: comments and sign-offs (experiments.views.discussion).

# Uploads: .keras models (experiments.views.uploads).
