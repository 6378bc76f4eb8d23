using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Hapnd.Projections.Contracts;

public record SagaState
{
    public string CorrelationId { get; init; } = "";
    public List<string> Steps { get; init; } = [];
    public ImmutableSortedSet<string> Aggregates { get; init; } = ImmutableSortedSet<string>.Empty;
    public string Outcome { get; init; } = "pending";
    public decimal Amount { get; init; }
    public string? Carrier { get; init; }
    public string? FailureReason { get; init; }
    public long StartedUnix { get; init; }
    public long DurationSeconds { get; init; }
}

public record PaymentRequestedData(decimal Amount);

public record ShipmentCreatedData(string Carrier);

public record PaymentDeclinedData(string Reason);

public class SagaProjection : IProjection<SagaState>
{
    public string? ResolveKey(Event @event) => @event.CorrelationId;

    public SagaState Apply(SagaState? state, Event @event)
    {
        var saga = state ?? new SagaState
        {
            CorrelationId = @event.CorrelationId ?? "",
            StartedUnix = @event.Timestamp.ToUnixTimeSeconds(),
        };

        saga = @event.Type switch
        {
            "PaymentRequested" => saga with { Amount = @event.GetData<PaymentRequestedData>().Amount },
            "ShipmentCreated" => saga with { Carrier = @event.GetData<ShipmentCreatedData>().Carrier },
            "PaymentDeclined" => saga with { FailureReason = @event.GetData<PaymentDeclinedData>().Reason },
            _ => saga,
        };

        TimeSpan elapsed = @event.Timestamp - DateTimeOffset.FromUnixTimeSeconds(saga.StartedUnix);
        return saga with
        {
            Steps = [.. saga.Steps, $"{@event.AggregateId}:{@event.Type}"],
            Aggregates = saga.Aggregates.Add(@event.AggregateId),
            Outcome = (saga.Outcome, @event.Type) switch
            {
                ("pending", "ShipmentDelivered") => "completed",
                ("pending", "PaymentDeclined") => "failed",
                var (current, _) => current,
            },
            DurationSeconds = (long)elapsed.TotalSeconds,
        };
    }
}
