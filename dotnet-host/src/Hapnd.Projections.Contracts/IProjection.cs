namespace Hapnd.Projections.Contracts;

/// <summary>
/// Builds read-model rows from the whole event log: each event is routed to a row by its key, then folded into that
/// row's state. Implement this; the host calls it through <see cref="IProjection"/>.
/// </summary>
/// <typeparam name="TState">One row's state, serialized as camelCase JSON between calls.</typeparam>
public interface IProjection<TState> : IProjection
{
    /// <summary>The key of the row <paramref name="event"/> updates, or null when it updates none.</summary>
    new string? ResolveKey(Event @event);

    /// <summary>Returns the row's state after <paramref name="event"/>; <paramref name="state"/> is null for a new row.</summary>
    TState Apply(TState? state, Event @event);

    Type IProjection.StateType => typeof(TState);

    string? IProjection.ResolveKey(Event @event) => ResolveKey(@event);

    string IProjection.ApplyJson(string? stateJson, Event @event) =>
        ContractJson.SerializeState(Apply(ContractJson.DeserializeState<TState>(stateJson), @event));

    object? IProjection.DeserializeState(string? stateJson) => ContractJson.DeserializeState<TState>(stateJson);

    object? IProjection.ApplyBoxed(object? state, Event @event) => Apply(ContractJson.CastState<TState>(state), @event);

    string IProjection.SerializeState(object? state) => ContractJson.SerializeState(ContractJson.CastState<TState>(state));
}

/// <summary>
/// The non-generic face of <see cref="IProjection{TState}"/>, so a host calls user code without reflection. Every
/// member has a default implementation in <see cref="IProjection{TState}"/>: implement that interface, not this one.
/// </summary>
public interface IProjection
{
    /// <summary>The projection's row state type.</summary>
    Type StateType { get; }

    /// <summary>The key of the row an event updates, or null when it updates none.</summary>
    string? ResolveKey(Event @event);

    /// <summary>Applies one event to a row's JSON state (<c>null</c>: a new row) and returns the new state as JSON.</summary>
    string ApplyJson(string? stateJson, Event @event);

    /// <summary>Reads a JSON state (<c>null</c>: a new row) into a state object.</summary>
    object? DeserializeState(string? stateJson);

    /// <summary>Applies one event to a state object from <see cref="DeserializeState"/> or an earlier call.</summary>
    object? ApplyBoxed(object? state, Event @event);

    /// <summary>Writes a state object as JSON.</summary>
    string SerializeState(object? state);
}
