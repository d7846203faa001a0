from django.urls import path

from .consumers import ExperimentConsumer

websocket_urlpatterns = [
    path("ws/experiments/<int:pk>/", ExperimentConsumer.as_asgi()),
]
