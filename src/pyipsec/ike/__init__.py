"""The IKEv2 protocol core: a sans-I/O state machine (DESIGN.md §1, §3).

Layers, top to bottom (import-linter keeps every arrow pointing down)::

    engine     IkeEngine: which SA does what, and when — routing by SPI, the SA tables,
               half-open limits and COOKIEs, timers, the public API and its typed outputs
    manager    TaskManager: how an exchange runs — queues, message IDs, retransmission,
               the responder's task table (exchange type × SA state), errors, migration
    tasks/     what an exchange means — one concern per module (ike_init, ike_auth,
               ike_config, child_create, ike_rekey, ike_reauth, ike_mobike, delete, informational)
    exchanger  message mechanics of one SA: IDs, in-flight request, response cache, SK, fragments
    sa         IkeSa and ChildSa: state only, every lifecycle change through ``apply(event)``
    task       the Task hooks, Exchange, Step, and Followups (what tasks may ask the manager)
    state      the lifecycle tables of IKE and Child SAs

Where a datagram goes: ``IkeEngine.receive_datagram`` → the SA by SPI → ``TaskManager.receive``
→ the exchanger (drop, resend a cached response, decrypt, reassemble) → the tasks: for a
request, the ones ``RESPONDER_TASKS`` picks (``process_r``, ``build_r``, ``after_response``);
for a response, the tasks of our exchange in flight (``process_i``). What they produce —
datagrams and events — comes back as the engine's ``Output``.

When a task needs I/O (a RADIUS round trip, a revocation check, a lease or an EAP user from a
store behind I/O) it raises ``Suspend`` with a lookup (``lookups.py``); the manager parks the
exchange, the engine emits ``LookupNeeded``, and ``IkeEngine.answer(ticket, …)`` resumes it
with the host's answer.

Adding an exchange: write its task in ``tasks/`` (subclass ``Task``; raise ``IkeError`` for
protocol errors; ask ``sa.ctx.followups`` for anything beyond the exchange); as initiator, add
a ``TaskManager`` method that queues an ``Exchange`` with it and call that from the engine
where it decides to start it (an API method or a timer in ``_lifetimes``); as responder, add
its tasks to ``manager._SERVES`` for the exchange type and the SA states that may answer it;
new lifecycle states or moves go into ``state.py``'s tables (and the property test walks them).
"""
