from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from experiments.forms import LoginForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("experiments.api.urls")),
    path("", include("experiments.urls")),
]
