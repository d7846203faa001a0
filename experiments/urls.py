from django.urls import path

from .views import discussion, pages, review, teams, uploads

urlpatterns = [
    path("", pages.home, name="home"),
    path("healthz", pages.healthz, name="healthz"),
    path("experiments/", pages.experiment_list, name="experiment_list"),
    path("experiments/new/", pages.experiment_new, name="experiment_new"),
    path("experiments/new/advice/", pages.experiment_advice, name="experiment_advice"),
    path("experiments/<int:pk>/", pages.experiment_detail, name="experiment_detail"),
    path("experiments/<int:pk>/results/", pages.experiment_results, name="experiment_results"),
    path("experiments/<int:pk>/curves/", pages.experiment_curves_json, name="experiment_curves"),
    path("experiments/<int:pk>/rebenchmark/", pages.experiment_rebenchmark,
         name="experiment_rebenchmark"),
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
urlpatterns += [
    path("compare/", review.compare, name="compare"),
    path("experiments/<int:pk>/report/", review.experiment_report, name="experiment_report"),
]

# Discussion: comments and sign-offs (experiments.views.discussion).
urlpatterns += [
    path("experiments/<int:pk>/comments/", discussion.comment_add, name="comment_add"),
    path("comments/<int:pk>/delete/", discussion.comment_delete, name="comment_delete"),
    path("runs/<int:pk>/signoff/", discussion.run_signoff, name="run_signoff"),
    path("signoffs/<int:pk>/revoke/", discussion.signoff_revoke, name="signoff_revoke"),
]

# Uploads: .keras models (experiments.views.uploads).
urlpatterns += [
    path("models/", uploads.model_list, name="model_list"),
]

# Teams: members and roles (experiments.views.teams).
urlpatterns += [
    path("teams/", teams.team_list, name="team_list"),
    path("teams/<int:pk>/members/", teams.team_member_add, name="team_member_add"),
    path("teams/<int:pk>/members/<int:membership_id>/", teams.team_member_update,
         name="team_member_update"),
]
