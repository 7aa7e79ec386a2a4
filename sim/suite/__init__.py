"""The world's devices and apps, talking to the suite over gRPC with their own
credentials, as the real ones would: nothing here reads a service's tables or tells
a service anything a real device or app could not know."""
