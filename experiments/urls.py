from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("experiments/new/", views.experiment_new, name="experiment_new"),
    path("experiments/<int:pk>/", views.experiment_detail, name="experiment_detail"),
    path("experiments/<int:pk>/results/", views.experiment_results, name="experiment_results"),
    path("experiments/<int:pk>/spec.json", views.experiment_spec, name="experiment_spec"),
    path("experiments/<int:pk>/export.<str:fmt>", views.experiment_export,
         name="experiment_export"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/artifacts/<str:name>", views.run_artifact, name="run_artifact"),
    path("runs/<int:pk>/save-recipe/", views.run_save_recipe, name="run_save_recipe"),
    path("recipes/", views.recipe_list, name="recipe_list"),
    path("recipes/<int:pk>/delete/", views.recipe_delete, name="recipe_delete"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/rerun/", views.run_rerun, name="run_rerun"),
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("runners/", views.runner_list, name="runner_list"),
    path("runners/table/", views.runner_table, name="runner_table"),
]
