from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from . import review, views

router = SimpleRouter()
router.register("teams", views.TeamViewSet, basename="api-team")
router.register("experiments", views.ExperimentViewSet, basename="api-experiment")
router.register("runs", views.RunViewSet, basename="api-run")
router.register("recipes", views.RecipeViewSet, basename="api-recipe")
router.register("datasets", views.DatasetViewSet, basename="api-dataset")
router.register("models", views.UploadedModelViewSet, basename="api-model")
router.register("comments", review.CommentViewSet, basename="api-comment")
router.register("signoffs", review.SignOffViewSet, basename="api-signoff")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("compare/", review.CompareView.as_view(), name="api-compare"),
    *router.urls,
]
