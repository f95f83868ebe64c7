"""The API's routes, one module-level router per topic; ``backend.app`` includes them all."""
