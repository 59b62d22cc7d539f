//! The `QuotaSupervisor` actor: owns every scope's quota state and wait queue, grants permits,
//! schedules wake-ups, applies provider feedback, and reports snapshots.
