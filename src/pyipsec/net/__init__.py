"""Network helpers: endpoints, IP header peeks, traffic selectors, UDP encapsulation."""
