from django.urls import path

from .consumers import ExperimentConsumer, RunnersConsumer

websocket_urlpatterns = [
    path("ws/experiments/<int:pk>/", ExperimentConsumer.as_asgi()),
    path("ws/runners/", RunnersConsumer.as_asgi()),
]
