namespace Hapnd.Projections.Contracts;

/// <summary>
/// Folds one aggregate's events into its state. Implement this; the host calls it through <see cref="IReducer"/>.
/// </summary>
/// <typeparam name="TState">The aggregate's state, serialized as camelCase JSON between calls.</typeparam>
public interface IReducer<TState> : IReducer
{
    /// <summary>Returns the state after <paramref name="event"/>; <paramref name="state"/> is null before the first event.</summary>
    TState Apply(TState? state, Event @event);

    Type IReducer.StateType => typeof(TState);

    string IReducer.ApplyJson(string? stateJson, Event @event) =>
        ContractJson.SerializeState(Apply(ContractJson.DeserializeState<TState>(stateJson), @event));

    object? IReducer.DeserializeState(string? stateJson) => ContractJson.DeserializeState<TState>(stateJson);

    object? IReducer.ApplyBoxed(object? state, Event @event) => Apply(ContractJson.CastState<TState>(state), @event);

    string IReducer.SerializeState(object? state) => ContractJson.SerializeState(ContractJson.CastState<TState>(state));
}

/// <summary>
/// The non-generic face of <see cref="IReducer{TState}"/>, so a host calls user code without reflection. Every member
/// has a default implementation in <see cref="IReducer{TState}"/>: implement that interface, not this one.
/// </summary>
public interface IReducer
{
    /// <summary>The reducer's state type.</summary>
    Type StateType { get; }

    /// <summary>Applies one event to a JSON state (<c>null</c>: none yet) and returns the new state as JSON.</summary>
    string ApplyJson(string? stateJson, Event @event);

    /// <summary>Reads a JSON state (<c>null</c>: none yet) into a state object.</summary>
    object? DeserializeState(string? stateJson);

    /// <summary>Applies one event to a state object from <see cref="DeserializeState"/> or an earlier call.</summary>
    object? ApplyBoxed(object? state, Event @event);

    /// <summary>Writes a state object as JSON.</summary>
    string SerializeState(object? state);
}
