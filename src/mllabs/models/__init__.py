"""Networks written in the project (no torchvision)."""
