using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using Hapnd.Projections.Contracts;

public record CustomerOrder(string OrderId, decimal Amount, string Status);

public record CustomerOrders
{
    public string CustomerId { get; init; } = "";
    public List<CustomerOrder> Orders { get; init; } = [];
    public int OpenOrders { get; init; }
    public int ShippedOrders { get; init; }
    public int CancelledOrders { get; init; }
    public decimal LifetimeValue { get; init; }
    public long FirstSeenUnix { get; init; }
    public long LastActivityPosition { get; init; }
}

public record CustomerOrderData(string CustomerId, decimal? Total);

[ProjectionName("orders-by-customer")]
public class OrdersByCustomerProjection : IProjection<CustomerOrders>
{
    public string? ResolveKey(Event @event) =>
        @event.Data.ValueKind == JsonValueKind.Object
        && @event.Data.TryGetProperty("customerId", out var id)
        && id.ValueKind == JsonValueKind.String
            ? id.GetString()
            : null;

    public CustomerOrders Apply(CustomerOrders? state, Event @event)
    {
        var data = @event.GetData<CustomerOrderData>();
        var row = state ?? new CustomerOrders { CustomerId = data.CustomerId, FirstSeenUnix = @event.Timestamp.ToUnixTimeSeconds() };

        var orders = @event.Type switch
        {
            "OrderPlaced" => [.. row.Orders, new CustomerOrder(@event.AggregateId, data.Total ?? 0m, "placed")],
            "OrderShipped" => SetStatus(row.Orders, @event.AggregateId, "shipped"),
            "OrderCancelled" => SetStatus(row.Orders, @event.AggregateId, "cancelled"),
            _ => row.Orders,
        };

        return row with
        {
            Orders = orders,
            OpenOrders = orders.Count(o => o.Status == "placed"),
            ShippedOrders = orders.Count(o => o.Status == "shipped"),
            CancelledOrders = orders.Count(o => o.Status == "cancelled"),
            LifetimeValue = orders.Where(o => o.Status != "cancelled").Sum(o => o.Amount),
            LastActivityPosition = @event.GlobalPosition,
        };
    }

    private static List<CustomerOrder> SetStatus(List<CustomerOrder> orders, string orderId, string status) =>
        orders.Select(o => o.OrderId == orderId ? o with { Status = status } : o).ToList();
}
