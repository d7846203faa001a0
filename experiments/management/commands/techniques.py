from django.core.management.base import BaseCommand

from experiments.techniques import reference_markdown


class Command(BaseCommand):
    help = ("Print every technique a recipe can use, by family, with its parameters and help "
            "(Markdown, read from the technique classes).")

    def handle(self, *args, **options):
        self.stdout.write(reference_markdown())
